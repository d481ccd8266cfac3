"""AppTest: the Compare page (synced player, A/B wipe, what differs, large files, variation groups) and the
Create page's Variations control. No model runs: finished jobs are faked with files in outputs/."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from test_ui_queue import fragments_only
from ui_support import (  # noqa: F401 - fixtures
    fake_done_job,
    idle_studio,
    new_app,
    run,
    studio_home,
    texts,
    unknown_elements,
)

from app_pages.common import PAGE_COMPARE, generator
from backend.jobs.variations import expand, group_members, submit_group
from backend.record import JobRecord
from backend.spec import JobSpec

pytestmark = pytest.mark.ui

COMPARE = "app_pages/compare.py"
BASE = JobSpec(prompt="a red fox running through snow", model_set="tiny", width=256, height=144, duration=2.0,
               fps=8, seed=42)


def player_data(at) -> dict:
    players = unknown_elements(at, "bidi_component")
    assert len(players) == 1
    return json.loads(players[0].proto.json)


def open_compare(at, **query: str):
    at.switch_page(COMPARE)
    at.query_params.clear()
    at.query_params.update(query)
    return run(at)


def finish_fake(gen, job_id: str) -> None:
    """A queued job of ``gen`` ended as done, with a (fake) video in outputs/."""
    with gen.store._connect() as db:
        db.execute("UPDATE jobs SET state = 'running', started = 1 WHERE id = ?", (job_id,))
    video = gen.paths.outputs / f"fake-{uuid.uuid4().hex[:8]}.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    record = JobRecord(id=job_id, spec=gen.status(job_id).spec, format="mp4/h264")
    gen.store.finish(job_id, "done", output=str(video), record=record)


def test_two_videos_play_in_sync_with_what_differs(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    a = fake_done_job(gen, "a red fox <b>running</b> through snow")
    b = fake_done_job(gen, "a red fox in the rain", guidance=9.0)
    at = open_compare(run(new_app()), jobs=f"{a},{b}")
    assert at.multiselect(key="cmp_jobs").value == [a, b]
    data = player_data(at)
    assert data["mode"] == "side" and [v["letter"] for v in data["videos"]] == ["A", "B"]
    assert all(v["src"].startswith("data:video/mp4;base64,") for v in data["videos"])
    assert "fox" not in players_text(at)  # no prompt (no user text at all) inside the component
    assert "a red fox <b>running</b> through snow" in [t.value for t in at.text]  # prompts as plain text

    rows = {row["setting"]: (row["A"], row["B"]) for row in at.dataframe[0].value.to_dict("records")}
    assert rows["Guidance"] == ("preset default", "9") and "Prompt" in rows and "Seed" not in rows
    at.toggle(key="cmp_all").set_value(True)
    run(at)
    assert len(at.dataframe[0].value) > len(rows) and "Seed" in list(at.dataframe[0].value["setting"])

    at.radio(key="cmp_mode").set_value("wipe")
    run(at)
    assert player_data(at)["mode"] == "wipe"
    at.multiselect(key="cmp_jobs").unselect(b)
    run(at)
    assert at.query_params["jobs"] in (a, [a]) and "Pick at least two videos" in texts(at)
    assert not unknown_elements(at, "bidi_component")


def players_text(at) -> str:
    proto = unknown_elements(at, "bidi_component")[0].proto
    return proto.json + proto.html_content


def test_a_large_video_plays_on_its_own(idle_studio: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - pytest fixture
    import app_pages.sync_player as sync_player

    gen = generator()
    a, b = fake_done_job(gen, "small"), fake_done_job(gen, "large")
    Path(gen.status(b).output).write_bytes(b"\x00" * 4096)
    monkeypatch.setattr(sync_player, "MAX_VIDEO_BYTES", 1024)
    at = open_compare(run(new_app()), jobs=f"{a},{b}")
    assert [v["letter"] for v in player_data(at)["videos"]] == ["A"]
    assert "B is 0 MB, too large to play in sync" in texts(at) and len(unknown_elements(at, "video")) == 1


def test_a_group_of_variations_fills_in_as_its_jobs_finish(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    group_id, ids = submit_group(gen, expand(BASE, "seed", [42, 43, 44]), "seed")
    finish_fake(gen, ids[0])
    finish_fake(gen, ids[1])
    at = open_compare(run(new_app()), group=group_id)
    page = texts(at)
    assert "Variations of seed: 3 video(s)" in page and "seed 44" in page and "waiting in the queue" in page
    assert at.multiselect(key="cmp_jobs").value == ids[:2] and len(player_data(at)["videos"]) == 2
    rows = {row["setting"]: (row["A"], row["B"]) for row in at.dataframe[0].value.to_dict("records")}
    assert rows == {"Seed": ("42", "43")}  # a variation differs in its one setting

    finish_fake(gen, ids[2])
    with fragments_only(at):
        run(at)  # the polling part sees the last variation done and redraws the page
    assert at.multiselect(key="cmp_jobs").value == ids and len(player_data(at)["videos"]) == 3
    assert "waiting in the queue" not in texts(at)


def _variations_page() -> None:
    import streamlit as st

    from app_pages.variations import variations_controls
    from backend.spec import JobSpec

    spec = JobSpec(prompt="a red fox", model_set="tiny", width=256, height=144, duration=2.0, fps=8, seed=42)
    broken = st.session_state.get("broken", False)
    variations_controls(lambda: None if broken else spec.validate(), "Prompt: the prompt is empty.")


def test_the_variations_control_queues_a_group(idle_studio: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - pytest fixture
    from streamlit.testing.v1 import AppTest

    import app_pages.variations as variations

    went: list[tuple[str, dict]] = []
    monkeypatch.setattr(variations, "go", lambda page, **query: went.append((page, query)))
    gen = generator()
    at = AppTest.from_function(_variations_page, default_timeout=30)
    run(at)
    at.selectbox(key="v_kind").set_value("seeds_next")
    run(at)
    at.number_input(key="v_count").set_value(3)
    at.button(key="v_generate").click()
    run(at)
    assert went and went[-1][0] == PAGE_COMPARE
    members = group_members(gen.store, went[-1][1]["group"])
    assert [m.label for m in members] == ["seed 42", "seed 43", "seed 44"]
    assert [gen.status(m.job_id).spec["seed"] for m in members] == [42, 43, 44]

    at.selectbox(key="v_kind").set_value("guidance")
    run(at)
    at.text_input(key="v_values_guidance").input("5, abc")
    at.button(key="v_generate").click()
    run(at)
    assert "'abc' is not a number" in texts(at) and len(gen.queue()) == 3  # nothing more queued

    at.selectbox(key="v_kind").set_value("engine")
    run(at)
    at.multiselect(key="v_pick_engine").set_value(["ltx", "wan"])
    at.button(key="v_generate").click()
    run(at)
    engines = group_members(gen.store, went[-1][1]["group"])
    assert [m.label for m in engines] == ["engine ltx", "engine wan"]
    assert {gen.status(m.job_id).spec["seed"] for m in engines} == {42}

    at.session_state["broken"] = True
    at.button(key="v_generate").click()
    run(at)
    assert "Fix the form first: Prompt: the prompt is empty." in texts(at)

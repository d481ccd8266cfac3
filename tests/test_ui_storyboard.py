"""AppTest: the storyboard editor on the Live job page drives a real review on the tiny models —
regenerate one keyframe with a new prompt (the others stay byte-identical), animate, the video plays."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from ui_support import (  # noqa: F401 - fixtures
    JOB_TIMEOUT_S,
    install_generator,
    new_app,
    poll,
    run,
    studio_home,
    texts,
    unknown_elements,
)

from backend.spec import JobSpec

pytestmark = [pytest.mark.ui, pytest.mark.tiny, pytest.mark.e2e]

PROMPT = "a hot air balloon rising over a misty valley at dawn"


def _digests(files: list[Path]) -> list[str]:
    return [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]


def _wait_for(gen, job_id: str, state: str) -> None:
    status = gen.wait(job_id, timeout=JOB_TIMEOUT_S)
    assert status.state == state, (status.state, status.error)


def test_editor_regenerates_one_keyframe_then_animates(studio_home: Path) -> None:  # noqa: F811 - pytest fixture
    gen = install_generator(start_worker=True)
    spec = JobSpec(prompt=PROMPT, model_set="tiny", engine="ltx", keyframes=3, duration=2.0, fps=8, width=256,
                   height=144, seed=5, review=True)
    job_id = gen.submit(spec)
    _wait_for(gen, job_id, "awaiting_review")
    files = gen.storyboard_editor().keyframe_files(job_id, 3)
    before = _digests(files)

    at = new_app()
    at.query_params["job"] = job_id
    run(at)
    at.switch_page("app_pages/live_job.py")
    run(at)
    assert "The keyframes are ready" in texts(at)
    assert at.text_area(key=f"sb_{job_id}_1_prompt").value  # each keyframe shows its own prompt
    new_prompt = "the balloon high above the clouds, the valley far below"
    at.text_area(key=f"sb_{job_id}_1_prompt").input(new_prompt)
    at.checkbox(key=f"sb_{job_id}_1_newseed").check()
    at.button(key=f"sb_{job_id}_1_regen").click()
    run(at)
    _wait_for(gen, job_id, "awaiting_review")
    after = _digests(files)
    assert after[0] == before[0] and after[2] == before[2] and after[1] != before[1]

    poll(at, lambda a: _has_button(a, f"sb_{job_id}_animate"))
    assert at.text_area(key=f"sb_{job_id}_1_prompt").value == new_prompt
    at.button(key=f"sb_{job_id}_animate").click()
    run(at)
    _wait_for(gen, job_id, "done")
    poll(at, lambda a: len(unknown_elements(a, "video")) == 1)
    record = gen.status(job_id).record
    assert record is not None and record.storyboard is not None
    assert [e.action for e in record.storyboard.edits] == ["regenerate", "animate"]
    assert record.stages.keyframes is not None and record.stages.keyframes.prompts[1] == new_prompt


def _has_button(at, key: str) -> bool:
    try:
        at.button(key=key)
    except KeyError:
        return False
    return True

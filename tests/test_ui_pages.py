"""AppTest: the Queue, Gallery, Models and System pages, and the one-orchestrator rule (no model runs)."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest
import streamlit as st
from legacy_data import V1_SIDECAR, insert_v1_job
from ui_support import (  # noqa: F401 - fixtures
    fake_done_job,
    idle_studio,
    install_generator,
    new_app,
    open_page,
    poll,
    run,
    studio_home,
    texts,
    unknown_elements,
)

from app_pages.common import generator, process_state
from backend.models.registry import MODELS
from backend.spec import JobSpec


def _spec(prompt: str) -> JobSpec:
    return JobSpec(prompt=prompt, model_set="tiny", width=256, height=144, duration=2.0, fps=8)


def test_one_orchestrator_across_sessions_cache_clears_and_reloads(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    first = generator()
    run(new_app())
    run(new_app())  # a second tab
    st.cache_resource.clear()
    assert generator() is first
    sys.modules.pop("app_pages.common")  # what Streamlit does to watched modules on a code change
    reloaded = importlib.import_module("app_pages.common")
    assert reloaded.generator() is first
    assert len(process_state().generators) == 1


def test_queue_lists_cancels_removes_and_requeues(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    running_id = gen.submit(_spec("first job, running"))
    waiting_id = gen.submit(_spec("second job, waiting"))
    failed_id = gen.submit(_spec("third job, failed"))
    assert gen.store.claim_next().id == running_id  # no worker here: play its part
    gen.store.finish(failed_id, "failed", error="Something broke: re-queue it.")

    at = open_page(run(new_app()), "app_pages/job_queue.py")
    page = texts(at)
    assert "first job, running" in page and "second job, waiting" in page
    assert "third job, failed" in page and "Something broke" in page

    at.button(key=f"q_remove_{waiting_id}").click()
    run(at)
    assert gen.store.get(waiting_id) is None and "second job, waiting" not in texts(at)

    at.button(key=f"q_cancel_{running_id}").click()
    run(at)
    assert not gen.store.get(running_id).cancel_requested  # a running job asks first
    at.button(key=f"q_cancel_yes_{running_id}").click()
    run(at)
    assert gen.store.get(running_id).cancel_requested

    at.button(key=f"q_requeue_{failed_id}").click()
    run(at)
    assert gen.status(failed_id).state == "queued"


def test_a_video_from_before_the_typed_record_shows_in_the_gallery_and_reuses(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    job = insert_v1_job(gen.paths.database, gen.paths.outputs, post={"grade": "warm", "sharpen": 1.25})
    Path(job["output"]).write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    shutil.copy(V1_SIDECAR, job["sidecar"])
    at = open_page(run(new_app()), "app_pages/gallery.py")
    page = texts(at)
    assert "ocean waves crashing on a beach at golden hour" in page and "seed 7" in page
    at.toggle(key=f"g_play_{job['id']}").set_value(True)
    run(at)
    assert len(unknown_elements(at, "video")) == 1  # its record says H.264, so it plays inline

    at.button(key=f"g_reuse_{job['id']}").click()
    run(at)
    assert [t.value for t in at.title] == ["Create"]
    assert at.text_area(key="c_prompt").value == "ocean waves crashing on a beach at golden hour"
    assert at.radio(key="c_models").value == "tiny" and at.selectbox(key="c_size").value == "256x144"
    assert at.number_input(key="c_seed").value == 7
    # Finishing options come from the old spec's "post" (today "finish"), not the form's defaults.
    assert at.selectbox(key="c_grade").value == "warm" and at.slider(key="c_sharpen").value == 1.25


def test_gallery_lists_filters_reuses_and_deletes_with_confirmation(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    fox = fake_done_job(gen, "a red fox running through snow")
    fake_done_job(gen, "a lighthouse in a storm at night")
    at = open_page(run(new_app()), "app_pages/gallery.py")
    page = texts(at)
    assert page.index("a lighthouse in a storm") < page.index("a red fox")  # newest first
    assert "256×144" in page and "seed 7" in page
    assert at.button(key=f"g_reuse_{fox}") is not None
    assert at.get("download_button")  # MP4 and sidecar

    at.text_input(key="g_filter").input("fox")
    run(at)
    assert "a red fox" in texts(at) and "lighthouse" not in texts(at)

    at.toggle(key=f"g_play_{fox}").set_value(True)
    run(at)
    assert len(unknown_elements(at, "video")) == 1

    at.button(key=f"g_reuse_{fox}").click()
    run(at)
    assert [t.value for t in at.title] == ["Create"]
    assert at.text_area(key="c_prompt").value == "a red fox running through snow"
    assert at.radio(key="c_models").value == "tiny" and at.selectbox(key="c_size").value == "256x144"
    assert at.toggle(key="c_seed_random").value is False and at.number_input(key="c_seed").value == 7

    at = open_page(at, "app_pages/gallery.py")
    output = Path(gen.status(fox).output)
    at.button(key=f"g_delete_{fox}").click()
    run(at)
    assert "cannot be undone" in texts(at) and output.exists()  # asked first
    at.button(key=f"g_yes_{fox}").click()
    run(at)
    with pytest.raises(KeyError):
        gen.status(fox)
    assert not output.exists() and not output.with_suffix(".json").exists()


def test_models_page_shows_status_and_handles_offline_download(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = open_page(run(new_app()), "app_pages/models.py")
    page = texts(at)
    for expected in ("SDXL base", "Stable Video Diffusion XT", "output is noise", "models/ uses", "missing",
                     "pinned to commit 462165984030", "pinned to the published file's SHA-256 e55fd00f3cc1"):
        assert expected in page
    for key in ("sdxl-base", "svd-xt", "tiny-sdxl"):
        assert at.button(key=f"m_verify_{key}") is not None
    at.button(key="m_verify_svd-xt").click()
    run(at)
    assert any("not downloaded" in e.value.replace("\\", "") for e in at.error)

    # No hub access here (HF_HUB_OFFLINE=1): the download fails with a sentence, not a traceback.
    at.button(key="m_download_sdxl-turbo").click()
    run(at)
    poll(at, lambda a: any("offline" in e.value.lower() or "space" in e.value.lower() for e in a.error), timeout=60)
    assert at.button(key="m_download_sdxl-turbo") is not None  # can be tried again


def test_models_page_points_a_preset_at_a_folder_already_on_disk(
        studio_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - pytest fixture
    from backend.models.tiny import ensure_tiny_model

    # Links are recorded in the models folder: use a private one, not the shared tiny-model cache.
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "models"))
    install_generator(start_worker=False)
    root = generator().paths.models
    assert root == tmp_path / "models"
    folder = ensure_tiny_model("svd", root)  # a real StableVideoDiffusionPipeline folder
    at = open_page(run(new_app()), "app_pages/models.py")
    at.text_input(key="m_link_path_svd-xt").input("/nonexistent/folder")
    run(at)  # the button enables once the field has text
    at.button(key="m_link_svd-xt").click()
    run(at)
    assert any("cannot serve" in e.value.replace("\\", "") for e in at.error)
    at.text_input(key="m_link_path_sdxl-base").input(str(folder))  # wrong pipeline class
    run(at)  # the button enables once the field has text
    at.button(key="m_link_sdxl-base").click()
    run(at)
    assert any("needs a StableDiffusionXLPipeline" in e.value.replace("\\", "") for e in at.error)
    at.text_input(key="m_link_path_svd-xt").input(str(folder))
    run(at)  # the button enables once the field has text
    at.button(key="m_link_svd-xt").click()
    run(at)
    from backend.models import store

    assert store.status(MODELS["svd-xt"], root).state == "linked"


def test_system_page_shows_readings_and_runs_diagnostics(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = open_page(run(new_app()), "app_pages/system.py")
    page = texts(at)
    assert "CPU" in "".join(m.label for m in at.metric) and "RAM" in "".join(m.label for m in at.metric)
    assert "No NVIDIA driver" in page or "VRAM used" in "".join(m.label for m in at.metric)
    assert "Disk of" in str([p.proto for p in at.get("progress")])
    at.button(key="s_diagnostics").click()
    run(at)
    page = texts(at)
    assert "can generate" in page or "cannot generate" in page
    assert at.dataframe


def test_missing_diagnostics_script_is_a_clear_message(tmp_path: Path) -> None:
    from app_pages.diagnostics import run_diagnostics

    report = run_diagnostics(tmp_path / "test_system.py")
    assert "not installed" in report["error"]


def _diagnostics_page() -> None:  # an AppTest script: the report comes from the session
    import streamlit as st

    from app_pages.diagnostics import show_report

    show_report(st.session_state["report"])


@pytest.mark.parametrize(("statuses", "banner", "says"), [
    (["OK", "OK"], "success", "every check passed"),
    (["OK", "WARN", "WARN"], "warning", "with 2 warnings"),
    (["OK", "WARN", "FAIL"], "error", "cannot generate"),
])
def test_the_diagnostics_banner_reflects_the_warnings(statuses: list[str], banner: str, says: str) -> None:
    from streamlit.testing.v1 import AppTest

    checks = [{"name": f"check {i}", "status": s, "detail": f"detail {i}", "hint": ""} for i, s in enumerate(statuses)]
    at = AppTest.from_function(_diagnostics_page)
    at.session_state["report"] = {"ok": "FAIL" not in statuses, "checks": checks}
    at.run()
    assert not at.exception
    banners = {"success": at.success, "warning": at.warning, "error": at.error}
    assert says in banners[banner][0].value  # the first line the user reads
    assert banner == "success" or not at.success  # never green above warnings

"""AppTest end to end on the tiny test models (output is noise): the real worker, the real pipeline.

Two waits in the whole UI suite: one job to done (then the gallery, also after a restart), one
cancelled while it runs. ``run_every`` never fires in AppTest, so the tests poll with ``at.run()``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from ui_support import (  # noqa: F401 - fixtures
    JOB_TIMEOUT_S,
    TINY_PROMPT,
    fill_tiny_job,
    new_app,
    open_page,
    poll,
    run,
    studio_home,
    texts,
    unknown_elements,
)

from app_pages.common import generator, shutdown_generators
from backend.stages import motion

pytest.importorskip("backend.stages.finish", reason="the finishing stage is not in this checkout yet")


def _job_id(at) -> str:
    value = at.query_params["job"]
    return value[0] if isinstance(value, list) else value


def test_tiny_job_from_create_to_done_to_gallery_and_after_restart(studio_home: Path, monkeypatch) -> None:  # noqa: F811 - pytest fixture
    # Motion waits until the page has shown the storyboard of the running job (tiny keyframes take a blink).
    storyboard_shown = threading.Event()
    real_motion = motion.run

    def motion_after_the_storyboard_is_seen(ctx, inputs):
        storyboard_shown.wait(JOB_TIMEOUT_S)
        return real_motion(ctx, inputs)

    monkeypatch.setattr(motion, "run", motion_after_the_storyboard_is_seen)
    at = run(new_app())
    fill_tiny_job(at)
    at.button(key="c_generate").click()
    run(at)
    assert [t.value for t in at.title] == ["Live job"]
    job_id = _job_id(at)

    seen_running = []

    def finished(a) -> bool:
        state = generator().status(job_id).state
        if state == "running":
            seen_running.append(texts(a))
            if "Storyboard" in seen_running[-1]:
                storyboard_shown.set()
        # "Done in": the finished view (segment previews are videos too while the job runs)
        return "Done in" in texts(a) or state in ("failed", "cancelled", "interrupted")

    poll(at, finished, every=0.3)
    status = generator().status(job_id)
    assert status.state == "done", status.error
    videos = unknown_elements(at, "video")
    assert len(videos) == 1 and videos[0].proto.url.endswith(".mp4")
    assert "Done in" in texts(at)
    assert {b.proto.label for b in at.get("download_button")} >= {"Download MP4", "Download settings (JSON)"}
    assert len(status.previews) >= 2 and at.get("image")  # the storyboard strip
    assert seen_running and all("Remaining (est.)" in page for page in seen_running)
    assert any("Storyboard" in page for page in seen_running)  # keyframes appear while the job runs

    at.button(key=f"gallery_{job_id}").click()
    run(at)
    assert [t.value for t in at.title] == ["Gallery"]
    assert TINY_PROMPT in texts(at) and at.button(key=f"g_reuse_{job_id}") is not None

    # A server restart: a new orchestrator over the same folder, a new session.
    shutdown_generators()
    after = open_page(run(new_app()), "app_pages/gallery.py")
    assert TINY_PROMPT in texts(after) and after.button(key=f"g_reuse_{job_id}") is not None


def test_cancel_a_running_tiny_job_then_requeue_it(studio_home: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    fill_tiny_job(at, prompt="a slow tiny job to cancel")
    at.number_input(key="c_duration").set_value(8.0)  # long enough to still be running when cancelled
    run(at)
    at.button(key="c_generate").click()
    run(at)
    job_id = _job_id(at)
    # The Cancel button must be on the page the user sees, not only the job running in the backend.
    poll(at, lambda a: generator().status(job_id).state == "running" and has_button(a, f"cancel_{job_id}"),
         timeout=120, every=0.5)
    at.button(key=f"cancel_{job_id}").click()
    run(at)
    # Wait for what the user sees, not only the backend: the page must have redrawn since the cancel landed.
    poll(at, lambda a: generator().status(job_id).state == "cancelled" and "cancelled" in texts(a), timeout=120)

    queue = open_page(at, "app_pages/job_queue.py")
    assert "a slow tiny job to cancel" in texts(queue)
    queue.button(key=f"q_requeue_{job_id}").click()
    run(queue)
    assert generator().status(job_id).state in ("queued", "running")
    generator().cancel(job_id)  # don't leave it running for the next test
    generator().wait(job_id, timeout=120)


def has_button(at, key: str) -> bool:
    try:
        at.button(key=key)
    except KeyError:
        return False
    return True

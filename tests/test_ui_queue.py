"""AppTest: the Queue page's tools — ETAs, pause/resume, reorder, duplicate, cancel (asks first) — and the
"interrupted, failed or cancelled" list redrawing when a job leaves the queue. No model runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import streamlit.testing.v1.local_script_runner as local_runner
from test_ui_gallery import in_order, position
from ui_support import idle_studio, new_app, open_page, run, studio_home, texts  # noqa: F401 - fixtures

from app_pages.common import generator
from backend.jobs.queue_tools import is_paused
from backend.spec import JobSpec

pytestmark = pytest.mark.ui

QUEUE = "app_pages/job_queue.py"


def _spec(prompt: str, seed: int | None = None) -> JobSpec:
    return JobSpec(prompt=prompt, model_set="tiny", width=256, height=144, duration=2.0, fps=8, seed=seed)


@contextmanager
def fragments_only(at) -> Iterator[None]:
    """The next run is what the browser does every 2 s: only the page's polling fragments run."""
    fragment_ids = list(at._fragment_storage._fragments)
    real = local_runner.RerunData
    local_runner.RerunData = lambda **kw: real(**kw, fragment_id_queue=list(fragment_ids), is_auto_rerun=True)
    try:
        yield
    finally:
        local_runner.RerunData = real


def has_key(at, key: str) -> bool:
    return any(getattr(node, "key", None) == key for node in in_order(at))


def test_the_retry_list_redraws_when_a_cancelled_job_leaves_the_queue(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    job = gen.submit(_spec("a job cancelled while the page polls"))
    assert gen.store.claim_next().id == job
    at = open_page(run(new_app()), QUEUE)
    assert "No interrupted, failed or cancelled jobs." in texts(at)
    gen.store.finish(job, "cancelled")  # what the worker does once it sees the cancel
    with fragments_only(at):
        run(at)  # only the polling part of the page runs: it sees the job gone and redraws the whole page
    assert has_key(at, f"q_requeue_{job}") and "a job cancelled while the page polls" in texts(at)
    assert "No interrupted, failed or cancelled jobs." not in texts(at)


def test_cancelling_a_running_job_asks_first(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    job = gen.submit(_spec("a running job"))
    assert gen.store.claim_next().id == job
    at = open_page(run(new_app()), QUEUE)
    at.button(key=f"q_cancel_{job}").click()
    run(at)
    assert not gen.store.get(job).cancel_requested
    question = position(at, lambda n: type(n).__name__ == "Warning" and "Cancel the running job" in str(n.value))
    assert question < position(at, lambda n: getattr(n, "key", None) == f"q_cancel_yes_{job}")
    at.button(key=f"q_cancel_no_{job}").click()
    run(at)
    assert not gen.store.get(job).cancel_requested and has_key(at, f"q_cancel_{job}")
    at.button(key=f"q_cancel_{job}").click()
    run(at)
    at.button(key=f"q_cancel_yes_{job}").click()
    run(at)
    assert gen.store.get(job).cancel_requested


def test_reorder_pause_duplicate_and_etas(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    running = gen.submit(_spec("the running job"))
    assert gen.store.claim_next().id == running
    first, second = gen.submit(_spec("first waiting", seed=5)), gen.submit(_spec("second waiting"))
    at = open_page(run(new_app()), QUEUE)
    page = texts(at)
    assert "Queue done in: ~" in page and "starts in ~" in page and "runs ~" in page
    assert "left" in at.get("progress")[0].proto.text  # the running job's remaining time
    assert "(rough)" in page  # nothing measured on this machine yet: the planner's estimate

    at.button(key=f"q_down_{first}").click()
    run(at)
    assert [j.id for j in gen.queue()] == [running, second, first]
    assert texts(at).index("second waiting") < texts(at).index("first waiting")
    assert at.button(key=f"q_up_{second}").disabled and at.button(key=f"q_down_{first}").disabled

    at.button(key="q_pause").click()
    run(at)
    assert is_paused(gen.store) and "The queue is paused" in texts(at)
    assert gen.store.claim_next() is None  # nothing starts while paused
    at.button(key="q_pause").click()
    run(at)
    assert not is_paused(gen.store) and "The queue is paused" not in texts(at)

    at.button(key=f"q_dup_{first}").click()
    run(at)
    copies = [j for j in gen.queue() if j.spec["prompt"] == "first waiting"]
    assert len(copies) == 2 and {j.spec["seed"] for j in copies} == {5}
    assert gen.queue()[-1].id != first  # the copy waits at the end

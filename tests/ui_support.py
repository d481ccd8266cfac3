"""Shared helpers for the UI tests (AppTest and the real browser).

Every test gets its own runtime folder (``STUDIO_HOME``); the tiny test models are shared through
``STUDIO_MODELS_DIR`` (the suite's conftest sets one for the session; otherwise a per-run cache).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from streamlit.testing.v1 import AppTest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = REPO_ROOT / "app.py"
RUN_TIMEOUT_S = 60  # one script run; the first one starts the orchestrator
JOB_TIMEOUT_S = 240  # a tiny job end to end on a 2-core CPU
TINY_PROMPT = "ocean waves crashing on a beach at golden hour"
SHARED_MODELS = Path(tempfile.gettempdir()) / "studio-ui-test-models"


@pytest.fixture
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh runtime folder; the orchestrators started for it are shut down afterwards."""
    from app_pages.common import shutdown_generators

    home = tmp_path / "studio"
    monkeypatch.setenv("STUDIO_HOME", str(home))
    if not os.environ.get("STUDIO_MODELS_DIR"):
        monkeypatch.setenv("STUDIO_MODELS_DIR", str(SHARED_MODELS))
    yield home
    shutdown_generators()


@pytest.fixture
def idle_studio(studio_home: Path) -> Path:
    """A runtime folder whose orchestrator has no worker: submitted jobs stay queued (deterministic)."""
    install_generator(start_worker=False)
    return studio_home


def install_generator(*, start_worker: bool):  # -> VideoGenerator
    """Put an orchestrator for the current STUDIO_HOME into the app's process-wide holder."""
    from app_pages import common
    from backend.jobs.orchestrator import VideoGenerator
    from backend.memory import HardwareProfile
    from backend.paths import runtime_paths

    cpu = HardwareProfile(None, None, 0.0, 0.0, 16.0, 12.0, 2)  # skip the torch-based probe: no GPU here
    gen = VideoGenerator(runtime_paths(), hardware=cpu, start_worker=start_worker)
    holder = common.process_state()
    with holder.lock:
        holder.generators[common._key()] = gen
        holder.last_start_try[common._key()] = float("inf")  # the app must not start a worker for it later
    return gen


def new_app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)


def run(at: AppTest) -> AppTest:
    """One script run that must not raise."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(page)
    return run(at)


def texts(at: AppTest) -> str:
    """Everything the page says in text-like elements, for substring checks."""
    parts: list[str] = []
    for kind in ("title", "subheader", "markdown", "caption", "text", "error", "warning", "info", "success",
                 "code", "toast"):
        parts.extend(str(e.value) for e in getattr(at, kind, []))
    parts.extend(block.label for block in [*at.status, *at.expander])
    parts.extend(f"{m.label}: {m.value}" for m in at.metric)
    return "\n".join(parts).replace("\\", "")


def poll(at: AppTest, done: Callable[[AppTest], bool], timeout: float = JOB_TIMEOUT_S, every: float = 1.0) -> AppTest:
    """Re-run the script (AppTest never fires run_every by itself) until ``done`` or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        run(at)
        if done(at):
            return at
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s; page says:\n{texts(at)[-3000:]}")
        time.sleep(every)


def fill_tiny_job(at: AppTest, prompt: str = TINY_PROMPT) -> AppTest:
    """The Create form set for a fast tiny-model job (the form's own tiny defaults: 256×144, 2 s, 8 fps)."""
    at.radio(key="c_models").set_value("tiny")
    run(at)
    at.text_area(key="c_prompt").input(prompt)
    run(at)
    assert at.selectbox(key="c_size").value == "256x144"
    return at


def unknown_elements(at: AppTest, type_name: str) -> list:
    """Elements AppTest has no class for (st.video shows up like this), by proto type."""
    found = []

    def walk(node) -> None:
        if getattr(node, "type", None) == type_name:
            found.append(node)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


def fake_done_job(gen, prompt: str = "a red fox running through snow", **spec_fields) -> str:  # gen: VideoGenerator
    """A finished job with files in outputs/, written straight to the store (no model run)."""
    import json
    import uuid

    from backend.record import JobRecord
    from backend.spec import JobSpec

    spec = JobSpec(prompt=prompt, model_set="tiny", width=256, height=144, duration=2.0, fps=8, seed=7,
                   **spec_fields).validate()
    job_id = uuid.uuid4().hex
    gen.store.add(job_id, spec.to_dict())
    claimed = gen.store.claim_next()
    assert claimed is not None and claimed.id == job_id
    video = gen.paths.outputs / f"fake-{job_id[:8]}.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    sidecar = video.with_suffix(".json")
    record = JobRecord(id=job_id, spec=spec.to_dict(), format="mp4/h264")
    sidecar.write_text(json.dumps(record.to_dict()), encoding="utf-8")
    gen.store.finish(job_id, "done", output=str(video), sidecar=str(sidecar), record=record)
    return job_id

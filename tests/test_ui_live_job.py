"""AppTest: the Live job page while a job runs and after it stopped, with no model run.

A job is put into the store by hand (claimed: ``running``; or ended ``cancelled``/``interrupted``/``failed``) on an
orchestrator without a worker, and its work folder is filled the way the stages fill it: keyframes, finished
motion segments with their preview MP4 (``backend.media.segment_previews``, which the motion stage calls).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ui_support import idle_studio, new_app, run, studio_home, texts, unknown_elements  # noqa: F401 - fixtures

from backend.media.clip import save_frames
from backend.media.segment_previews import make_preview
from backend.record import JobRecord
from backend.spec import JobSpec

pytestmark = pytest.mark.ui

PROGRESS_ERROR = "Could not show the job's progress"


def _job(gen, *, run_it: bool = True) -> str:
    spec = JobSpec(prompt="a red fox running through snow", model_set="tiny", width=256, height=144, duration=2.0,
                   fps=8, seed=7).validate()
    job_id = uuid.uuid4().hex
    gen.store.add(job_id, spec.to_dict())
    if run_it:
        assert gen.store.claim_next().id == job_id
    return job_id


def _keyframes(gen, job_id: str, count: int) -> list[Path]:
    folder = gen.paths.job_workdir(job_id) / "keyframes"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"keyframe_{i:03d}.png"
        Image.new("RGB", (64, 36), (40 * i, 120, 200)).save(path)
        paths.append(path)
    return paths


def _segment(gen, job_id: str, index: int, total: int) -> Path:
    """A finished motion segment as the motion stage leaves it: frames, the marker, the preview."""
    folder = gen.paths.job_workdir(job_id) / "segments" / f"segment_{index:03d}"
    save_frames([np.full((64, 96, 3), 20 * i, np.uint8) for i in range(12)], folder)
    (folder / "segment.json").write_text('{"frames": 12, "seeds": [1]}')
    preview = make_preview(folder, 24, total)
    assert preview is not None and preview.stat().st_size > 0
    return preview


def _live_page(job_id: str):
    at = new_app()
    at.query_params["job"] = job_id
    run(at)
    at.switch_page("app_pages/live_job.py")
    return run(at)


def _path_of(at, label: str) -> tuple[int, ...]:
    """Where the expander ``label`` sits in the page's tree: the frontend keeps a block's state (open or closed)
    only while it stays at the same place."""
    found: list[tuple[int, ...]] = []

    def walk(node, path: tuple[int, ...]) -> None:
        if getattr(node, "type", None) == "expander" and getattr(node, "label", None) == label:
            found.append(path)
        for key, child in getattr(node, "children", {}).items():
            walk(child, (*path, key))

    walk(at._tree, ())
    assert len(found) == 1, found
    return found[0]


def _images(at) -> int:
    return sum(len(e.value) for e in at.get("image"))


def test_each_finished_segment_plays_on_the_page_while_the_job_runs(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    from app_pages.common import generator

    gen = generator()
    job_id = _job(gen)
    at = _live_page(job_id)
    assert "Segment" not in texts(at) and not unknown_elements(at, "video")

    first = _segment(gen, job_id, 0, 3)
    run(at)
    assert gen.status(job_id).state == "running"
    assert "Segment 1/3" in texts(at) and "Segment 2/3" not in texts(at)
    assert len(unknown_elements(at, "video")) == 1
    assert at.button(key=f"cancel_{job_id}")  # still the live panel
    assert first.read_bytes()[4:8] == b"ftyp"  # an MP4 file

    _segment(gen, job_id, 1, 3)
    run(at)
    page = texts(at)
    assert page.index("Segment 1/3") < page.index("Segment 2/3")  # in order
    assert len(unknown_elements(at, "video")) == 2 and PROGRESS_ERROR not in page


def test_the_log_expander_keeps_its_place_when_the_first_keyframe_appears(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    """It closed itself: the storyboard strip was inserted above it, so the frontend saw a new block there."""
    from app_pages.common import generator

    gen = generator()
    job_id = _job(gen)
    at = _live_page(job_id)
    before = _path_of(at, "Log")
    assert _images(at) == 0

    (keyframe,) = _keyframes(gen, job_id, 1)
    gen.store.update_record(job_id, JobRecord(id=job_id, spec=gen.status(job_id).spec, previews=[str(keyframe)]))
    run(at)
    assert _images(at) == 1  # the strip is there now
    assert _path_of(at, "Log") == before
    _segment(gen, job_id, 0, 2)
    run(at)
    assert "Segment 1/2" in texts(at) and _path_of(at, "Log") == before  # nor does the first segment move it


def test_a_keyframe_that_vanishes_while_the_page_reads_it_is_left_out(idle_studio: Path, monkeypatch) -> None:  # noqa: F811 - pytest fixture
    from app_pages import job_panel
    from app_pages.common import generator, preview_file

    gen = generator()
    job_id = _job(gen)
    kept, vanishing = _keyframes(gen, job_id, 2)
    gen.store.update_record(job_id, JobRecord(id=job_id, spec=gen.status(job_id).spec,
                                              previews=[str(kept), str(vanishing)]))

    def resolve_then_lose(path):  # the file is checked, then a resume's clean-up deletes it before it is read
        found = preview_file(path)
        if found is not None and found.name == vanishing.name:
            vanishing.unlink(missing_ok=True)
        return found

    monkeypatch.setattr(job_panel, "preview_file", resolve_then_lose)
    at = _live_page(job_id)
    assert PROGRESS_ERROR not in texts(at) and not at.error
    assert _images(at) == 1


@pytest.mark.parametrize("state", ["cancelled", "interrupted", "failed"])
def test_a_stopped_job_still_shows_its_storyboard_and_segments(idle_studio: Path, state: str) -> None:  # noqa: F811 - pytest fixture
    """Its keyframes are still in the work folder (no previews were recorded): the strip reads them there."""
    from app_pages.common import generator

    gen = generator()
    job_id = _job(gen)
    _keyframes(gen, job_id, 3)
    _segment(gen, job_id, 0, 2)
    gen.store.finish(job_id, state, error="the motion model ran out of memory" if state == "failed" else None)
    at = _live_page(job_id)
    assert gen.status(job_id).state == state and not gen.status(job_id).previews
    assert "Storyboard" in texts(at) and _images(at) == 3
    assert "Segment 1/2" in texts(at) and len(unknown_elements(at, "video")) == 1
    assert at.button(key=f"requeue_{job_id}")

"""The storyboard editor's rules and file handling, on a job parked for review (no model runs)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from PIL import Image

from backend.errors import StoryboardError
from backend.hashing import file_sha256
from backend.jobs.store import AWAITING_REVIEW, QUEUED, JobStore
from backend.jobs.storyboard import StoryboardEditor
from backend.paths import RuntimePaths, runtime_paths
from backend.record import JobRecord, KeyframesRecord, Storyboard, StoryboardFrame
from backend.spec import JobSpec

pytestmark = pytest.mark.unit

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]


@pytest.fixture
def parked(studio_home: RuntimePaths) -> tuple[StoryboardEditor, JobStore, str]:
    """A job in ``awaiting_review`` with four keyframes (solid colours) at 0, 1, 2 and 3 s of 24 fps."""
    paths = runtime_paths()
    store = JobStore(paths.database)
    job_id = uuid.uuid4().hex
    spec = JobSpec(prompt="a test", model_set="tiny", duration=3.0, review=True).validate()
    store.add(job_id, spec.to_dict())
    board = Storyboard(frames=[StoryboardFrame(float(i), f"moment {i}", seed=i) for i in range(4)],
                       segment_prompts=["a", "b", "c"], duration=3.0, motion_frames=73, min_keyframes=2)
    record = JobRecord(id=job_id, spec=spec.to_dict(), storyboard=board)
    record.stages.keyframes = KeyframesRecord(size=[64, 48])
    folder = paths.job_workdir(job_id) / "keyframes"
    folder.mkdir(parents=True)
    for i, colour in enumerate(COLOURS):
        Image.new("RGB", (64, 48), colour).save(folder / f"keyframe_{i:03d}.png")
    assert store.claim_next().id == job_id
    store.park_for_review(job_id, record, "ready")
    return StoryboardEditor(paths, store), store, job_id


def _colours(editor: StoryboardEditor, job_id: str, count: int) -> list[tuple[int, int, int] | None]:
    found = []
    for path in editor.keyframe_files(job_id, count):
        found.append(Image.open(path).getpixel((0, 0)) if path.exists() else None)
    return found


def test_delete_renames_the_later_keyframes_and_joins_the_segment_prompts(parked) -> None:
    editor, store, job_id = parked
    result = editor.delete(job_id, 1)
    assert not result.needs_gpu and store.get(job_id).state == AWAITING_REVIEW
    assert _colours(editor, job_id, 3) == [COLOURS[0], COLOURS[2], COLOURS[3]]
    assert not editor.keyframe_files(job_id, 4)[3].exists()
    board = editor.load(job_id)[1]
    assert [f.prompt for f in board.frames] == ["moment 0", "moment 2", "moment 3"]
    assert board.segment_prompts == ["a, then b", "c"] and board.edits[-1].action == "delete"


def test_insert_shifts_files_up_and_queues_the_job_to_draw_the_new_one(parked) -> None:
    editor, store, job_id = parked
    result = editor.insert(job_id, 1.5, "a new moment", seed=99)
    assert result.needs_gpu and store.get(job_id).state == QUEUED
    assert _colours(editor, job_id, 5) == [COLOURS[0], COLOURS[1], None, COLOURS[2], COLOURS[3]]
    record = store.get(job_id).record
    assert [f.time for f in record.storyboard.frames] == [0.0, 1.0, 1.5, 2.0, 3.0]
    assert record.storyboard.frames[2].seed == 99 and len(record.storyboard.segment_prompts) == 4


def test_regenerate_removes_only_that_keyframe_and_records_prompt_and_seed(parked) -> None:
    editor, store, job_id = parked
    editor.regenerate(job_id, 2, prompt="  moment two, redrawn ", seed=1234)
    assert _colours(editor, job_id, 4) == [COLOURS[0], COLOURS[1], None, COLOURS[3]]
    frame = store.get(job_id).record.storyboard.frames[2]
    assert (frame.prompt, frame.seed, frame.source) == ("moment two, redrawn", 1234, "generated")
    assert store.get(job_id).state == QUEUED and "keyframes" not in store.stages(job_id)


def test_replace_writes_the_users_image_at_the_keyframe_size(parked, sample_png: Path) -> None:
    editor, store, job_id = parked
    editor.replace(job_id, 3, sample_png)
    path = editor.keyframe_files(job_id, 4)[3]
    assert Image.open(path).size == (64, 48) and store.get(job_id).state == AWAITING_REVIEW
    frame = store.get(job_id).record.storyboard.frames[3]
    assert frame.source == "uploaded" and frame.seed is None and frame.image_sha256 == file_sha256(path)


def test_move_keeps_order_and_ends_fixed(parked) -> None:
    editor, _, job_id = parked
    editor.move(job_id, 2, 2.5)
    assert editor.load(job_id)[1].frames[2].time == 2.5
    for index, when in ((2, 0.5), (0, 0.5), (3, 2.0), (1, 3.5)):
        with pytest.raises(StoryboardError):
            editor.move(job_id, index, when)


@pytest.mark.parametrize("edit, message", [
    (lambda e, j: e.delete(j, 0), "first and the last"),
    (lambda e, j: e.regenerate(j, 7), "no keyframe 8"),
    (lambda e, j: e.regenerate(j, 1, seed=-1), "seed"),
    (lambda e, j: e.insert(j, 3.5, "late"), "between the first"),
    (lambda e, j: e.insert(j, 1.5, "  "), "empty"),
])
def test_bad_edits_are_one_clear_sentence_and_change_nothing(parked, edit, message) -> None:
    editor, store, job_id = parked
    before = store.get(job_id).record.storyboard.to_dict()
    with pytest.raises(Exception) as caught:
        edit(editor, job_id)
    assert message in str(caught.value)
    assert store.get(job_id).record.storyboard.to_dict() == before
    assert _colours(editor, job_id, 4) == COLOURS


def test_a_job_that_is_not_waiting_for_review_cannot_be_edited(parked) -> None:
    editor, store, job_id = parked
    editor.animate(job_id)
    assert store.get(job_id).state == QUEUED and store.get(job_id).record.storyboard.approved
    with pytest.raises(StoryboardError, match="not waiting for review"):
        editor.regenerate(job_id, 1)

"""The storyboard a job follows: made from the shot plan, edited while the job waits for review.

A job with ``review`` stops after its keyframes in the ``awaiting_review`` state (see the store). The
user then edits the storyboard here — a keyframe's prompt or seed (regenerated), an uploaded image in
its place, a keyframe deleted, inserted or moved in time — and says Animate. Edits that need the GPU
(a new or regenerated keyframe) remove that keyframe's file and queue the job again: the keyframe stage
keeps every file on disk and draws only the missing ones, then the job waits for review once more.
Every edit is appended to ``Storyboard.edits``, so the sidecar says how the storyboard came to be.

Keyframe files are named by index (``keyframe_000.png`` …); deleting or inserting renames the files
after it, through temporary names, so that no file is ever overwritten half-way.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from backend.errors import StoryboardError
from backend.hashing import file_sha256
from backend.jobs.store import AWAITING_REVIEW, JobStore
from backend.paths import RuntimePaths
from backend.record import JobRecord, Storyboard, StoryboardEdit, StoryboardFrame
from backend.seeds import derive_seed
from backend.spec import MAX_SEED, JobSpec, clean_text
from backend.stages.keyframes import keyframe_paths
from backend.stages.motion_plan import positions_for_times

if TYPE_CHECKING:  # pragma: no cover
    from backend.prompting import ShotPlan

MAX_KEYFRAMES = 16
STAGES_AFTER_PLANNING = ("keyframes", "motion", "assemble", "finish")  # what an edit makes run again


def new_storyboard(plan: "ShotPlan", spec: JobSpec, *, start_image: bool, limits: tuple[int, int],
                   frames: int) -> Storyboard:
    """The storyboard of a job's first run: the plan's times and prompts, one derived seed per keyframe."""
    board = Storyboard(planner=plan.planner, segment_prompts=list(plan.segment_prompts), approved=not spec.review,
                       min_keyframes=limits[0], max_keyframes=limits[1], duration=spec.duration,
                       motion_frames=frames)
    for index, keyframe in enumerate(plan.keyframes):
        own = start_image and index == 0
        board.frames.append(StoryboardFrame(round(keyframe.time, 3), keyframe.prompt,
                                            seed=None if own else derive_seed(spec.seed, "keyframe", index),
                                            source="start image" if own else "generated"))
    return board


def storyboard_positions(board: Storyboard, total: int) -> list[int]:
    """The motion-clip frame of each keyframe, from its time."""
    return positions_for_times(board.times, board.duration or 0.0, total)


@dataclass(frozen=True)
class EditResult:
    storyboard: Storyboard
    needs_gpu: bool  # a keyframe must be drawn: the job was queued again


class StoryboardEditor:
    """Edits of a job that waits for review. Indices are 0-based here (the CLI and UI show 1-based)."""

    def __init__(self, paths: RuntimePaths, store: JobStore) -> None:
        self.paths = paths
        self.store = store

    # --- reading --------------------------------------------------------------------------------
    def load(self, job_id: str) -> tuple[JobRecord, Storyboard]:
        row = self.store.get(job_id)
        if row is None:
            raise StoryboardError(f"There is no job {job_id}.")
        if row.state != AWAITING_REVIEW:
            raise StoryboardError(f"Job {job_id[:8]} is {row.state.replace('_', ' ')}, not waiting for review: "
                                  "its storyboard can be edited only between the keyframes and Animate.")
        if row.record is None or row.record.storyboard is None:
            raise StoryboardError(f"Job {job_id[:8]} has no storyboard to edit.")
        return row.record, row.record.storyboard

    def keyframe_files(self, job_id: str, count: int) -> list[Path]:
        return keyframe_paths(self.paths.job_workdir(job_id), count)

    # --- edits ----------------------------------------------------------------------------------
    def regenerate(self, job_id: str, index: int, *, prompt: str | None = None, seed: int | None = None,
                   new_seed: bool = False) -> EditResult:
        """Draw keyframe ``index`` again: with a new prompt and/or seed (or the same ones)."""
        record, board = self.load(job_id)
        frame = self._frame(board, index)
        if frame.source == "start image":
            raise StoryboardError("Keyframe 1 is the picture the video starts from; replace it with another "
                                  "image instead of regenerating it.")
        if prompt is not None:
            frame.prompt = clean_text("prompt", prompt, required=True)
        if seed is not None:
            if isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
                raise StoryboardError(f"A seed is a whole number from 0 to {MAX_SEED}; got {seed}.")
            frame.seed = seed
        elif new_seed or frame.seed is None:
            frame.seed = secrets.randbelow(MAX_SEED + 1)
        frame.source, frame.image_sha256 = "generated", None
        self._remove_file(job_id, board, index)
        board.edits.append(StoryboardEdit("regenerate", index, time.time(), prompt=frame.prompt, seed=frame.seed))
        return self._save(job_id, record, board, needs_gpu=True)

    def replace(self, job_id: str, index: int, image_path: Path) -> EditResult:
        """Put the user's image (already validated and stored under uploads/) in place of keyframe ``index``."""
        from backend.media.imaging import fit_fill
        from backend.media.uploads import load_image
        from backend.stages.keyframes import save_keyframe

        record, board = self.load(job_id)
        frame = self._frame(board, index)
        size = record.stages.keyframes.size if record.stages.keyframes is not None else None
        if not size:
            raise StoryboardError("The keyframes' size is not recorded; regenerate the keyframe instead.")
        image = load_image(Path(image_path))
        path = self.keyframe_files(job_id, len(board.frames))[index]
        save_keyframe(fit_fill(image, (size[0], size[1])), path)
        frame.source, frame.seed, frame.image_sha256 = "uploaded", None, file_sha256(path)
        board.edits.append(StoryboardEdit("replace", index, time.time(), image_sha256=file_sha256(Path(image_path))))
        return self._save(job_id, record, board, needs_gpu=False)

    def delete(self, job_id: str, index: int) -> EditResult:
        record, board = self.load(job_id)
        self._frame(board, index)
        if len(board.frames) - 1 < board.min_keyframes:
            raise StoryboardError(f"This motion engine needs at least {board.min_keyframes} keyframe(s).")
        if index in (0, len(board.frames) - 1):
            raise StoryboardError("The first and the last keyframe hold the video's start and end; replace or "
                                  "regenerate them instead of deleting.")
        files = self.keyframe_files(job_id, len(board.frames))
        files[index].unlink(missing_ok=True)
        _rename_all([(old, new) for old, new in zip(files[index + 1:], files[index:])])
        board.frames.pop(index)
        self._merge_segment_prompts(board, index)
        board.edits.append(StoryboardEdit("delete", index, time.time()))
        return self._save(job_id, record, board, needs_gpu=False)

    def insert(self, job_id: str, at_time: float, prompt: str, *, seed: int | None = None) -> EditResult:
        """A new keyframe at ``at_time`` seconds (between the first and the last), drawn from ``prompt``."""
        record, board = self.load(job_id)
        most = max(len(board.frames), min(board.max_keyframes, MAX_KEYFRAMES))
        if len(board.frames) + 1 > most:
            raise StoryboardError(f"This storyboard can hold at most {most} "
                                  "keyframes.")
        index = next((i for i, f in enumerate(board.frames) if f.time > at_time), len(board.frames))
        if index in (0, len(board.frames)):
            raise StoryboardError(f"A new keyframe goes between the first ({board.frames[0].time:g} s) and the last "
                                  f"({board.frames[-1].time:g} s).")
        self._check_time(board, at_time, index - 1, index)
        text = clean_text("prompt", prompt, required=True)
        files = self.keyframe_files(job_id, len(board.frames) + 1)
        _rename_all([(old, new) for old, new in reversed(list(zip(files[index:-1], files[index + 1:])))])
        files[index].unlink(missing_ok=True)
        chosen = seed if seed is not None else secrets.randbelow(MAX_SEED + 1)
        board.frames.insert(index, StoryboardFrame(round(at_time, 3), text, seed=chosen))
        board.segment_prompts.insert(min(index, len(board.segment_prompts)), text)
        board.edits.append(StoryboardEdit("insert", index, time.time(), prompt=text, seed=chosen, time=at_time))
        return self._save(job_id, record, board, needs_gpu=True)

    def move(self, job_id: str, index: int, to_time: float) -> EditResult:
        """Move a middle keyframe in time, between its neighbours (the first and last stay put)."""
        record, board = self.load(job_id)
        frame = self._frame(board, index)
        if index in (0, len(board.frames) - 1):
            raise StoryboardError("The first and the last keyframe stay at the video's start and end.")
        self._check_time(board, to_time, index - 1, index + 1)
        frame.time = round(to_time, 3)
        board.edits.append(StoryboardEdit("move", index, time.time(), time=frame.time))
        return self._save(job_id, record, board, needs_gpu=False)

    def animate(self, job_id: str) -> EditResult:
        """The user approves the storyboard: the job goes back to the queue and runs to the end."""
        record, board = self.load(job_id)
        missing = [i + 1 for i, p in enumerate(self.keyframe_files(job_id, len(board.frames))) if not p.is_file()]
        if missing:
            raise StoryboardError(f"Keyframe(s) {', '.join(map(str, missing))} have no image yet; regenerate them "
                                  "or upload one first.")
        board.approved = True
        board.edits.append(StoryboardEdit("animate", None, time.time()))
        return self._save(job_id, record, board, needs_gpu=True)

    # --- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _frame(board: Storyboard, index: int) -> StoryboardFrame:
        if isinstance(index, bool) or not 0 <= index < len(board.frames):
            raise StoryboardError(f"There is no keyframe {index + 1}: this storyboard has {len(board.frames)}.")
        return board.frames[index]

    @staticmethod
    def _check_time(board: Storyboard, at: float, before: int, after: int) -> None:
        low, high = board.frames[before].time, board.frames[after].time
        gap = (board.duration or 0.0) / max(1, (board.motion_frames or 2) - 1)  # one motion frame, in seconds
        if not low + gap <= at <= high - gap:
            raise StoryboardError(f"The time must be between {low + gap:.2f} s and {high - gap:.2f} s "
                                  "(after the keyframe before it and before the one after it).")

    @staticmethod
    def _merge_segment_prompts(board: Storyboard, index: int) -> None:
        """Deleting keyframe i joins the gaps on either side of it into one segment prompt."""
        prompts = board.segment_prompts
        if 0 < index <= len(prompts) - 1:
            prompts[index - 1:index + 1] = [f"{prompts[index - 1]}, then {prompts[index]}"]

    def _remove_file(self, job_id: str, board: Storyboard, index: int) -> None:
        self.keyframe_files(job_id, len(board.frames))[index].unlink(missing_ok=True)

    def _save(self, job_id: str, record: JobRecord, board: Storyboard, *, needs_gpu: bool) -> EditResult:
        record.storyboard = board
        # The keyframes and everything after them run again on the next run (files on disk are kept).
        self.store.clear_stages(job_id, STAGES_AFTER_PLANNING)
        self.store.update_record(job_id, record)
        if needs_gpu and not self.store.requeue(job_id):
            raise StoryboardError(f"Job {job_id[:8]} could not be queued again.")
        return EditResult(board, needs_gpu)


def _rename_all(moves: list[tuple[Path, Path]]) -> None:
    """Rename files in order through temporary names, so a rename never lands on a file still to move."""
    staged = []
    for old, new in moves:
        if old.exists():
            temp = old.with_name(f".{old.name}.move")
            old.replace(temp)
            staged.append((temp, new))
    for temp, new in staged:
        temp.replace(new)

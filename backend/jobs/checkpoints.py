"""Stage checkpoints and resume: what a re-run of a job may keep, and the clean-up before it.

A stage that finishes records a checkpoint (its record plus the size of every artifact) in the same
store transaction as the job record. On resume, a stage's checkpoint is *intact* when the stage was
done and every artifact is still on disk with the same size; a stage is *kept* only if every stage
before it is kept too (its inputs are the same). Before a resume, leftovers that are not complete
(half-written temp files, a segment with missing frames, an artifact whose size changed) are deleted,
so they are regenerated, deterministically per seed.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Sequence

from PIL import Image

from backend.jobs.store import StageCheckpoint
from backend.record import STAGE_NAMES, StageRecord
from backend.stages.keyframes import KEYFRAME_NAME
from backend.stages.motion import DONE_MARKER

log = logging.getLogger(__name__)


def kept_stages(checkpoints: dict[str, StageCheckpoint], workdir: Path) -> dict[str, StageRecord]:
    """Records of the stages a re-run keeps: done, artifacts intact, and every earlier stage kept too."""
    kept: dict[str, StageRecord] = {}
    for stage in STAGE_NAMES:
        checkpoint = checkpoints.get(stage)
        if checkpoint is None or checkpoint.state != "done" or not _artifacts_intact(checkpoint.artifacts, workdir):
            break
        kept[stage] = checkpoint.record
    return kept


def artifact_sizes(paths: Sequence[Path], workdir: Path) -> dict[str, int]:
    """Size of each artifact inside ``workdir``, by path relative to it (what a checkpoint stores)."""
    root = workdir.resolve()
    sizes = {}
    for path in paths:
        path = Path(path)
        if path.is_file() and path.resolve().is_relative_to(root):
            sizes[str(path.resolve().relative_to(root))] = path.stat().st_size
    return sizes


def keyframe_files(workdir: Path) -> list[Path]:
    return [p for p in sorted((workdir / "keyframes").glob("keyframe_*.png")) if KEYFRAME_NAME.fullmatch(p.name)]


def finished_segments(workdir: Path) -> int:
    return len(list((workdir / "segments").glob(f"*/{DONE_MARKER}")))


# --- clean-up before a (re-)run -----------------------------------------------------------------------
def discard_partials(workdir: Path) -> list[Path]:
    """Delete half-written files a stopped stage leaves (temp keyframes, unfinished segments)."""
    removed = []
    for pattern in ("keyframes/*.tmp.png", "segments/*.partial"):
        for path in workdir.glob(pattern):
            _remove(path)
            removed.append(path)
    return removed


def discard_broken_artifacts(workdir: Path) -> list[Path]:
    """Before a resume: drop leftovers that are not complete (rename without fsync, a power cut, a bad disk).

    Keyframes must decode; a segment folder must hold as many frames as its marker says.
    """
    removed = discard_partials(workdir)
    for path in keyframe_files(workdir):
        if not _png_readable(path):
            _remove(path)
            removed.append(path)
    for marker in sorted((workdir / "segments").glob(f"*/{DONE_MARKER}")):
        if not _segment_complete(marker):
            _remove(marker.parent)
            removed.append(marker.parent)
    if removed:
        log.warning("removed %d incomplete artifact(s) from %s; they will be made again", len(removed), workdir)
    return removed


def discard_changed_artifacts(workdir: Path, checkpoints: dict[str, StageCheckpoint]) -> list[Path]:
    """Delete checkpointed artifacts whose size changed since (a torn write); a segment goes whole."""
    removed: list[Path] = []
    for checkpoint in checkpoints.values():
        for relative, size in checkpoint.artifacts.items():
            path = workdir / relative
            if not path.exists() or _size(path) == size:
                continue
            target = path.parent if (path.parent / DONE_MARKER).exists() else path
            _remove(target)
            removed.append(target)
    if removed:
        log.warning("%d artifact(s) in %s changed since their checkpoint; they will be made again",
                    len(removed), workdir)
    return removed


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _segment_complete(marker: Path) -> bool:
    try:
        expected = int(json.loads(marker.read_text())["frames"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    frames = sorted(marker.parent.glob("*.png"))
    return len(frames) == expected and all(_png_readable(p) for p in frames)


def _png_readable(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (OSError, SyntaxError, ValueError):  # PIL reports broken PNG chunks as SyntaxError
        return False


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _artifacts_intact(artifacts: dict[str, int], workdir: Path) -> bool:
    for relative, size in artifacts.items():
        path = workdir / relative
        try:
            if not path.is_file() or path.stat().st_size != size:
                return False
        except OSError:
            return False
    return True

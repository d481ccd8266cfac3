"""Assemble: join the motion segments (after the source clip, when extending) into one clip.

The result runs at the motion engine's frame rate and has exactly the frames the requested
duration needs; converting to the delivery frame rate is the finishing stage's job.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from backend.media.clip import Clip, save_frames
from backend.media.imaging import fit_fill
from backend.media.video_io import iter_frames, probe_video
from backend.record import AssembleRecord
from backend.stages.context import StageContext


@dataclass(frozen=True)
class AssembleInputs:
    segments: list[Clip]
    fps: int
    frames_needed: int  # frames of the continuation (the source clip's frames come on top)
    prefix: Clip | None = None  # the video being extended, at the motion size and rate


@dataclass(frozen=True)
class AssembleResult:
    clip: Clip
    record: AssembleRecord


def run(ctx: StageContext, inputs: AssembleInputs) -> AssembleResult:
    """Concatenate; when extending, the continuation's first frame repeats the source's last and is dropped."""
    ctx.check_cancelled()
    prefix = inputs.prefix
    paths: list[Path] = [p for clip in inputs.segments for p in clip.frame_paths]
    if prefix is not None:
        paths = paths[1:]
    paths = retime(paths, inputs.frames_needed)
    if prefix is not None:
        paths = list(prefix.frame_paths) + paths
    first = inputs.segments[0]
    ctx.report(1.0, f"{len(paths)} frames at {inputs.fps} fps")
    record = AssembleRecord(frames=len(paths), fps=inputs.fps, source_frames=len(prefix) if prefix else 0)
    return AssembleResult(Clip(tuple(paths), inputs.fps, first.width, first.height), record)


def retime(paths: list[Path], count: int) -> list[Path]:
    """Exactly ``count`` frames: trim the end, or hold the last frame when short."""
    if not paths:
        raise ValueError("no frames to assemble")
    return paths[:count] + [paths[-1]] * max(0, count - len(paths))


def source_clip(ctx: StageContext, video: Path, *, fps: int, size: tuple[int, int]) -> Clip:
    """The video being extended, brought to the motion clip's size and frame rate (nearest frames)."""
    info = probe_video(video)
    folder = ctx.workdir / "source"
    marker = folder / "complete"
    wanted = max(1, round(info.frames / max(info.fps, 1e-6) * fps)) if info.fps > 0 else info.frames
    if not marker.exists():
        # Which source frame each output frame shows (nearest in time); a frame may repeat or be skipped.
        repeats = Counter(min(info.frames - 1, int(i * info.frames / wanted)) for i in range(wanted))
        kept: list[Image.Image] = []
        for index, frame in enumerate(iter_frames(video)):
            ctx.check_cancelled()
            if repeats[index]:
                kept.extend([fit_fill(Image.fromarray(frame), size)] * repeats[index])
        save_frames(kept, folder)
        marker.write_text(str(len(kept)))
    return Clip.from_folder(folder, fps)

"""Assemble: join the motion segments into one clip of exactly the frames the duration needs.

The result runs at the motion engine's frame rate (converting to the delivery rate is the finishing
stage's job). When extending a video, the source comes first, untouched, and the continuation is
brought to the source's size and frame rate here. With several segments (and ``finish.colour_match``
"auto"), each later segment's colour is matched to the first's as the clip is read (``media.colour``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from backend.media.clip import Clip, JoinedClip, VideoFileClip, save_frames
from backend.media.colour import MatchedClip, match_segments
from backend.media.imaging import fit_fill
from backend.media.video_io import probe_video
from backend.record import AssembleRecord
from backend.stages.context import StageContext


@dataclass(frozen=True)
class AssembleInputs:
    segments: list[Clip]  # the motion clip, segment by segment
    fps: int  # its frame rate
    duration: float  # seconds of new video
    prefix: VideoFileClip | None = None  # the video being extended, at its own size and rate


@dataclass(frozen=True)
class AssembleResult:
    clip: Clip | JoinedClip | MatchedClip
    record: AssembleRecord
    artifacts: tuple[Path, ...] = ()  # files this stage wrote (the matched continuation), for its checkpoint


def run(ctx: StageContext, inputs: AssembleInputs) -> AssembleResult:
    """Exactly the frames the duration needs; when extending, the continuation after the source, matched to it."""
    ctx.check_cancelled()
    prefix = inputs.prefix
    paths: list[Path] = [p for clip in inputs.segments for p in clip.frame_paths]
    first = inputs.segments[0]
    if prefix is None:
        paths = retime(paths, max(2, round(inputs.duration * inputs.fps)))
        record = AssembleRecord(frames=len(paths), fps=inputs.fps)
        clip: Clip | MatchedClip = Clip(tuple(paths), inputs.fps, first.width, first.height)
        segments = [list(s.frame_paths) for s in inputs.segments if s.frame_paths]
        if ctx.spec.finish.colour_match == "auto" and len(segments) > 1:
            ctx.report(0.5, f"matching the colour of {len(segments)} segments")
            match = match_segments(segments)
            clip, record.colour_match = MatchedClip(paths, inputs.fps, first.width, first.height, match), match.summary
            ctx.log(f"colour: {match.summary}")
        ctx.report(1.0, f"{len(paths)} frames at {inputs.fps} fps")
        return AssembleResult(clip, record)
    # Extending: the continuation's first frame repeats the source's last (dropped); the rest is brought to
    # the source's rate (nearest frame in time) and size (filled, no bars), so the source stays untouched.
    count = max(1, round(inputs.duration * prefix.fps))
    new = paths[1:]
    picked = [new[min(len(new) - 1, max(0, round((i + 1) * inputs.fps / prefix.fps) - 1))] for i in range(count)]
    continuation = _matched(ctx, picked, (prefix.width, prefix.height))
    clip = JoinedClip(prefix, Clip(tuple(continuation), prefix.fps, prefix.width, prefix.height))
    ctx.report(1.0, f"{len(prefix)} source frames + {count} new at {prefix.fps:g} fps")
    record = AssembleRecord(frames=len(clip), fps=round(prefix.fps), source_frames=len(prefix))
    return AssembleResult(clip, record, tuple(continuation))


def retime(paths: list[Path], count: int) -> list[Path]:
    """Exactly ``count`` frames: trim the end, or hold the last frame when short."""
    if not paths:
        raise ValueError("no frames to assemble")
    return paths[:count] + [paths[-1]] * max(0, count - len(paths))


def source_clip(ctx: StageContext, video: Path) -> VideoFileClip:
    """The video being extended, as it is: its own frames, size and frame rate."""
    info = probe_video(video)
    return VideoFileClip(video, info.fps, info.width, info.height, info.frames)


def _matched(ctx: StageContext, picked: list[Path], size: tuple[int, int]) -> list[Path]:
    """The picked continuation frames at the source's size, written once (kept for a resume)."""
    folder = ctx.workdir / "continuation"
    marker = folder / "complete"
    if marker.exists() and marker.read_text() == str(len(picked)):
        return sorted(folder.glob("*.png"))
    frames = []
    for path in picked:
        ctx.check_cancelled()
        with Image.open(path) as image:
            frames.append(fit_fill(image, size))
    paths = save_frames(frames, folder)
    marker.write_text(str(len(paths)))
    return paths

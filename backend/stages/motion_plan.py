"""Where each keyframe lands and which pipeline call makes which frames: pure arithmetic, no models.

The motion clip has ``total`` frames (0 … total-1). Keyframe ``k`` of ``count`` is pinned at
``keyframe_positions`` — the first at frame 0, the last at the last frame — and each strategy splits
the clip into segments (one segment = one run of pipeline calls whose frames go into one folder):

- keyframe windows (LTX): every keyframe inside a window is a condition at its frame; a long clip is
  made of windows that continue from the previous window's last ``overlap`` frames.
- first-last (Wan): one segment per keyframe gap, told its start and end keyframe; the first frame of
  each later segment repeats the previous segment's last (the shared keyframe) and is dropped.
- continuation (SkyReels): one segment from the first keyframe (or the source video) onward.
- first frame (SVD, CogVideoX): one segment per gap, started from its keyframe; the tail is crossfaded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Anchor:
    keyframe: int  # index into the storyboard
    frame: int  # frame of the call's output the keyframe is conditioned at (overlap frames included)


@dataclass(frozen=True)
class SegmentPlan:
    index: int
    start: int  # first frame of the motion clip this segment contributes
    frames: int  # frames it contributes
    anchors: tuple[Anchor, ...] = ()  # keyframe windows: the conditions of the call
    overlap: int = 0  # frames of what came before (or of the source video) the call continues from
    keep_from: int = 0  # output frames before this one repeat what came before, and are dropped
    first_keyframe: int | None = None  # first-last / first-frame / continuation: the start image
    last_keyframe: int | None = None  # first-last: the end image; first-frame: the crossfade target

    @property
    def call_frames(self) -> int:
        """Frames the calls must produce: the repeated ones, then the ones it keeps."""
        return self.keep_from + self.frames


def keyframe_positions(count: int, total: int, positions: list[int] | None = None) -> list[int]:
    """Frame of each keyframe: the storyboard's own (from its times), else evenly from 0 to ``total - 1``."""
    if positions is not None:
        increasing = positions == sorted(set(positions))
        if len(positions) != count or not increasing or not 0 <= positions[0] <= positions[-1] < total:
            raise ValueError(f"keyframe frames {positions} must be {count} increasing frames within 0..{total - 1}")
        return list(positions)
    if count <= 1:
        return [0]
    return [round(k * (total - 1) / (count - 1)) for k in range(count)]


def positions_for_times(times: list[float], duration: float, total: int) -> list[int]:
    """The motion-clip frame of each storyboard time (seconds of ``duration`` over ``total`` frames)."""
    if duration <= 0 or total <= 1:
        return [0] * len(times)
    return [min(total - 1, max(0, round(t / duration * (total - 1)))) for t in times]


def plan_keyframe_windows(count: int, total: int, max_frames: int, overlap: int, *,
                          lead: int = 0, positions: list[int] | None = None) -> list[SegmentPlan]:
    """Windows of at most ``max_frames``; each later one continues from the previous one's last ``overlap``.

    ``lead`` > 0 (extending a video): the first window continues from that many source frames, the last of
    which is frame 0 of the clip (the one the assemble stage drops).
    """
    positions = keyframe_positions(count, total, positions)
    if total + max(0, lead - 1) <= max_frames and not lead:
        return [SegmentPlan(0, 0, total, tuple(Anchor(k, p) for k, p in enumerate(positions)))]
    if not 0 < overlap < max_frames or lead >= max_frames:
        raise ValueError(f"overlap {overlap} and lead {lead} must be shorter than the window ({max_frames})")
    segments: list[SegmentPlan] = []
    start = 0
    while start < total:
        carried, keep_from = (overlap, overlap) if segments else (lead, max(0, lead - 1))
        frames = min(total - start, max_frames - keep_from)
        # Keyframes inside the carried frames are already there; the rest of the window's are conditions.
        anchors = tuple(Anchor(k, p - start + keep_from) for k, p in enumerate(positions)
                        if start <= p < start + frames and p - start + keep_from >= carried)
        segments.append(SegmentPlan(len(segments), start, frames, anchors, overlap=carried, keep_from=keep_from))
        start += frames
    return segments


def plan_first_last(count: int, total: int, positions: list[int] | None = None) -> list[SegmentPlan]:
    """One segment per keyframe gap, from keyframe k (at its frame) to keyframe k+1 (at its frame)."""
    positions = keyframe_positions(count, total, positions)
    if count <= 1:
        return [SegmentPlan(0, 0, total, first_keyframe=0)]
    segments = []
    for k in range(count - 1):
        start = positions[k] + (1 if k else 0)
        segments.append(SegmentPlan(k, start, positions[k + 1] + 1 - start, keep_from=1 if k else 0,
                                    first_keyframe=k, last_keyframe=k + 1))
    return segments


def plan_first_frame(count: int, total: int, positions: list[int] | None = None) -> list[SegmentPlan]:
    """One segment per keyframe gap, started from its keyframe; the tail fades toward the next one."""
    gaps = max(1, count - 1)
    if positions is not None and count > 1:  # each segment starts at its keyframe's frame; the last runs to the end
        bounds = [*keyframe_positions(count, total, positions)[:-1], total]
    else:
        bounds = [round(i * total / gaps) for i in range(gaps + 1)]
    return [SegmentPlan(i, bounds[i], bounds[i + 1] - bounds[i], first_keyframe=i,
                        last_keyframe=i + 1 if i + 1 < count else None) for i in range(gaps)]


def plan_continuation(total: int, lead: int = 0) -> list[SegmentPlan]:
    """One long shot from the first keyframe, or continuing from ``lead`` frames of a source video."""
    return [SegmentPlan(0, 0, total, overlap=lead, first_keyframe=None if lead else 0)]


def spread(frames: list, count: int) -> list:
    """``count`` of ``frames``, evenly spaced, keeping the first and the last (a call made a few too many)."""
    if count >= len(frames):
        return list(frames)
    if count == 1:
        return [frames[0]]
    return [frames[round(i * (len(frames) - 1) / (count - 1))] for i in range(count)]

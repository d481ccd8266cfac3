"""Making one planned segment's frames with an engine, the way its conditioning allows.

Each function gets the segment's plan (``motion_plan.SegmentPlan``), the storyboard images at the
generation size and what came before (the previous segment's frames, or the source video's tail), and
returns exactly ``segment.frames`` frames plus the seed of each call.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np
from PIL import Image

from backend.media.imaging import crossfade
from backend.memory.plans import MemoryPlan
from backend.models.registry import ModelRef
from backend.seeds import derive_seed, torch_generator
from backend.stages.context import StageContext
from backend.stages.engines.base import Conditioning, FrameCondition, MotionEngine, MotionRequest
from backend.stages.motion_plan import SegmentPlan, spread

TAIL_FRACTION = 0.25  # first-frame engines: share of each segment blended toward the next keyframe

# (request, chunk number) -> frames; the caller wires the pipeline, callback, seed and cancel.
Call = Callable[[MotionRequest, int], list[Image.Image]]


def segment_frames(ctx: StageContext, engine: MotionEngine, ref: ModelRef, pipe: Any, plan: MemoryPlan,
                   segment: SegmentPlan, base: MotionRequest, keyframes: list[Image.Image],
                   before: list[Image.Image], segment_count: int) -> tuple[list[Image.Image], list[int]]:
    """The segment's frames (exactly ``segment.frames``) and the seed of each pipeline call."""
    seeds: list[int] = []
    calls = expected_calls(engine.conditioning, segment, base.max_frames)

    def call(request: MotionRequest, chunk: int) -> list[Image.Image]:
        ctx.check_cancelled()
        seed = derive_seed(ctx.spec.seed, "motion", segment.index, chunk)
        seeds.append(seed)
        span = 1 / segment_count / calls  # each call its share of the segment, so the bar never goes back
        callback = ctx.step_callback(request.steps, start=(segment.index + min(chunk, calls - 1) / calls)
                                     / segment_count, span=span,
                                     label=f"segment {segment.index + 1}/{segment_count}, call {chunk + 1}")
        try:
            produced = engine.generate(pipe, ref, replace(request, seed=seed), plan, callback, torch_generator(seed))
        finally:
            pipe.maybe_free_model_hooks()
        return [_at_size(f, request.size) for f in produced]

    make = {Conditioning.KEYFRAMES: _keyframe_window, Conditioning.FIRST_LAST: _first_last,
            Conditioning.CONTINUATION: _continuation, Conditioning.FIRST_FRAME: _first_frame}[engine.conditioning]
    frames = make(segment, base, keyframes, before, call)
    if len(frames) < segment.frames:  # a call made fewer than asked (a capped plan): hold the last frame
        frames += [frames[-1]] * (segment.frames - len(frames))
    return frames[: segment.frames], seeds


def expected_calls(conditioning: Conditioning, segment: SegmentPlan, max_frames: int) -> int:
    """Pipeline calls a segment takes: one, or chained chunks for a first-frame engine."""
    if conditioning != Conditioning.FIRST_FRAME or segment.frames <= max_frames:
        return 1
    return 1 + -(-(segment.frames - max_frames) // max(1, max_frames - 1))


def _keyframe_window(segment: SegmentPlan, base: MotionRequest, keyframes: list[Image.Image],
                     before: list[Image.Image], call: Call) -> list[Image.Image]:
    """Every keyframe of the window at its frame; a later window continues from the previous one's tail."""
    video = tuple(before[-segment.overlap:]) if segment.overlap else ()
    conditions = tuple(FrameCondition(keyframes[a.keyframe], a.frame) for a in segment.anchors)
    request = replace(base, frames=segment.call_frames, conditions=conditions, video=video)
    return call(request, 0)[segment.keep_from:]


def _first_last(segment: SegmentPlan, base: MotionRequest, keyframes: list[Image.Image],
                before: list[Image.Image], call: Call) -> list[Image.Image]:
    """From one keyframe to the next in one call (the storyboard has enough keyframes for that)."""
    if segment.call_frames > base.max_frames:
        raise ValueError(f"segment {segment.index} needs {segment.call_frames} frames; one call makes "
                         f"{base.max_frames}: the storyboard needs more keyframes")
    start = keyframes[segment.first_keyframe or 0]
    end = keyframes[segment.last_keyframe] if segment.last_keyframe is not None else None
    request = replace(base, frames=segment.call_frames, first=start, last=end)
    # The engine rounds the count up (4k+1); spread keeps the first and the last frame exactly.
    return spread(call(request, 0), segment.call_frames)[segment.keep_from:]


def _continuation(segment: SegmentPlan, base: MotionRequest, keyframes: list[Image.Image],
                  before: list[Image.Image], call: Call) -> list[Image.Image]:
    """One long shot: from the first keyframe, or carrying on from the source video's last frames."""
    if segment.overlap:
        tail = tuple(before[-segment.overlap:])
        # Frame 0 of the clip repeats the source's last frame (the assemble stage drops it).
        return [tail[-1], *call(replace(base, frames=segment.frames - 1, video=tail), 0)]
    return call(replace(base, frames=segment.frames, first=keyframes[segment.first_keyframe or 0]), 0)


def _first_frame(segment: SegmentPlan, base: MotionRequest, keyframes: list[Image.Image],
                 before: list[Image.Image], call: Call) -> list[Image.Image]:
    """Chunks that each continue from the last frame so far; the tail fades toward the next keyframe."""
    frames: list[Image.Image] = []
    condition = keyframes[segment.first_keyframe or 0]
    chunk = 0
    while len(frames) < segment.frames:
        continues = bool(frames)  # the engine repeats its conditioning frame first: drop it
        wanted = segment.frames - len(frames) + (1 if continues else 0)
        produced = call(replace(base, frames=wanted, first=condition), chunk)
        frames.extend(produced[1:] if continues else produced)
        condition = frames[-1]
        chunk += 1
    frames = frames[: segment.frames]
    if segment.last_keyframe is None:
        return frames
    target = np.asarray(keyframes[segment.last_keyframe])
    return [Image.fromarray(f) for f in blend_tail([np.asarray(f) for f in frames], target)]


def blend_tail(frames: list[np.ndarray], target: np.ndarray) -> list[np.ndarray]:
    """Crossfade the last part of ``frames`` toward ``target`` (the next keyframe), ramping up."""
    tail = max(1, int(round(len(frames) * TAIL_FRACTION)))
    out = list(frames[: len(frames) - tail])
    for j, frame in enumerate(frames[len(frames) - tail:]):
        # Reaches (tail)/(tail+1) on the last frame; the next segment starts at the keyframe itself.
        out.append(crossfade(frame, target, (j + 1) / (tail + 1)))
    return out


def _at_size(frame: Image.Image, size: tuple[int, int]) -> Image.Image:
    frame = frame.convert("RGB")
    return frame if frame.size == size else frame.resize(size, Image.Resampling.LANCZOS)

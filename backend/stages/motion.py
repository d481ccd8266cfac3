"""Motion: animate from each keyframe toward the next with an image-to-video engine.

The video is split into segments, one per keyframe gap. A segment longer than the engine's native
length is generated as chunks, each conditioned on the previous chunk's last frame (progressive
long video). Image-to-video engines cannot be told where to end, so the tail of each segment is
crossfaded toward the next keyframe: the join into the next segment does not jump.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from backend.media.clip import Clip, save_frames
from backend.media.imaging import crossfade, fit_fill
from backend.memory.plans import MemoryPlan
from backend.memory.preflight import motion_model
from backend.models.registry import ModelRef, model_for
from backend.prompting import PromptAnalysis
from backend.record import MotionRecord, SegmentRecord, SizeCap
from backend.seeds import derive_seed, torch_generator
from backend.stages.context import StageContext
from backend.stages.motion_engines import ChunkRequest, MotionEngine, engine_for
from backend.work import denoising_steps

log = logging.getLogger(__name__)

TAIL_FRACTION = 0.25  # share of each segment blended toward the next keyframe
DONE_MARKER = "segment.json"


@dataclass(frozen=True)
class SegmentPlan:
    index: int
    frames: int  # frames this segment contributes to the video
    start_keyframe: Path
    next_keyframe: Path | None


@dataclass(frozen=True)
class MotionResult:
    segments: list[Clip]
    fps: int
    size: tuple[int, int]
    record: MotionRecord


def engine_ref(spec_model_set: str, engine: str) -> ModelRef:
    """The model of the engine the user asked for (before any low-memory substitution)."""
    return model_for(spec_model_set, engine)


@dataclass(frozen=True)
class MotionChoice:
    """Which motion model runs, with which plan, at what size, and why if it is not the one asked for."""

    ref: ModelRef
    plan: MemoryPlan
    size: tuple[int, int]
    max_frames: int
    substitution: str | None

    @property
    def uses_keyframes(self) -> bool:
        return not self.ref.low_memory


def choose_motion(spec_model_set: str, engine: str, hardware: Any) -> MotionChoice:
    """Pick the motion model for this machine (the memory planner may substitute or cap it)."""
    ref, plan, warning = motion_model(hardware, spec_model_set, engine)
    size = (plan.cap_width or ref.width, plan.cap_height or ref.height)
    return MotionChoice(ref, plan, size, min(ref.frames, plan.cap_frames or ref.frames), warning)


def plan_segments(keyframes: list[Path], total_frames: int) -> list[SegmentPlan]:
    """Split ``total_frames`` over the keyframe gaps (one segment when there is one keyframe)."""
    count = max(1, len(keyframes) - 1)
    bounds = [round(i * total_frames / count) for i in range(count + 1)]
    return [
        SegmentPlan(i, bounds[i + 1] - bounds[i], keyframes[i], keyframes[i + 1] if i + 1 < len(keyframes) else None)
        for i in range(count)
    ]


@dataclass(frozen=True)
class MotionInputs:
    analysis: PromptAnalysis
    keyframes: list[Path]  # the storyboard, in order ([] for a text-only engine)
    frames_needed: int  # frames of new video at the engine's frame rate
    choice: MotionChoice  # the model, plan and size chosen for this machine before the keyframes


def run(ctx: StageContext, inputs: MotionInputs) -> MotionResult:
    spec, choice, analysis, keyframes = ctx.spec, inputs.choice, inputs.analysis, inputs.keyframes
    # 1. Engine, model and settings (the choice was made before keyframes, from this machine's memory).
    ref = choice.ref
    engine = engine_for(ref, spec.engine)
    steps = denoising_steps(spec, ref, "motion")
    size = choice.size
    # A text-only engine has no keyframes to join: one segment, made of chunks joined by crossfades.
    segments = plan_segments(keyframes, inputs.frames_needed) if engine.uses_image else [
        SegmentPlan(0, inputs.frames_needed, keyframes[0] if keyframes else Path(), None)]
    root = ctx.workdir / "segments"
    record = MotionRecord(
        model=ref.key, engine=engine.name, fps=ref.fps, size=list(size), steps=steps,
        max_frames_per_call=choice.max_frames,
        join=(f"crossfade of the last {TAIL_FRACTION:.0%} of each segment toward the next keyframe"
              if engine.uses_image else "crossfade between independently generated chunks"),
        segments=[SegmentRecord(s.frames) for s in segments], substitution=choice.substitution,
        step_downs=ctx.step_downs,
        capped=SizeCap(size[0], size[1], choice.max_frames) if choice.plan.capped else None,
    )
    if choice.substitution:
        ctx.log(choice.substitution)
    if record.capped is not None:
        ctx.log(f"motion capped at {size[0]}×{size[1]}, {choice.max_frames} frames per call, to fit in memory")

    # 2. Generate what is missing; the memory manager re-calls this after an OOM step-down.
    def generate(pipe: Any, plan: MemoryPlan) -> None:
        record.memory_plan = plan.to_dict()
        for segment in segments:
            folder = root / f"segment_{segment.index:03d}"
            if (folder / DONE_MARKER).exists():
                continue
            _generate_segment(ctx, engine, ref, pipe, plan, segment, folder, steps, analysis, len(segments),
                              size, choice.max_frames)

    done = all((root / f"segment_{s.index:03d}" / DONE_MARKER).exists() for s in segments)
    if not done:
        ctx.run(ref, generate, plan=choice.plan)
    clips = [Clip.from_folder(root / f"segment_{s.index:03d}", ref.fps) for s in segments]
    record.segment_seeds = [json.loads((root / f"segment_{s.index:03d}" / DONE_MARKER).read_text())["seeds"]
                            for s in segments]
    return MotionResult(clips, ref.fps, size, record)


def _generate_segment(ctx: StageContext, engine: MotionEngine, ref: ModelRef, pipe: Any, plan: MemoryPlan,
                      segment: SegmentPlan, folder: Path, steps: int, analysis: PromptAnalysis,
                      segment_count: int, size: tuple[int, int], max_frames: int) -> None:
    condition: Image.Image | None = None
    if engine.uses_image:
        with Image.open(segment.start_keyframe) as start:
            condition = fit_fill(start, size)
    frames: list[Image.Image] = []
    seeds: list[int] = []
    chunk = 0
    # Chunks: each continues from the last frame so far; drop its first frame (it repeats that frame).
    while len(frames) < segment.frames:
        ctx.check_cancelled()
        continues = bool(frames) and engine.uses_image  # an image engine repeats its conditioning frame
        wanted = segment.frames - len(frames) + (1 if continues else 0)
        seed = derive_seed(ctx.spec.seed, "motion", segment.index, chunk)
        request = ChunkRequest(condition, size, wanted, max_frames, steps, seed, analysis.enhanced_prompt,
                               analysis.negative_prompt, ctx.spec.motion_strength)
        span = 1 / segment_count
        callback = ctx.step_callback(steps, start=segment.index * span, span=span,
                                     label=f"segment {segment.index + 1}/{segment_count}, chunk {chunk + 1}")
        try:
            produced = engine.generate(pipe, ref, request, plan, callback, torch_generator(seed))
        finally:
            pipe.maybe_free_model_hooks()
        produced = [f.convert("RGB").resize(size, Image.Resampling.LANCZOS) if f.size != size else f.convert("RGB")
                    for f in produced]
        if continues:
            frames.extend(produced[1:])
        elif frames:  # independent text-to-video chunks: ease the cut with a short crossfade
            frames = _join_with_crossfade(frames, produced)
        else:
            frames.extend(produced)
        condition = frames[-1]
        seeds.append(seed)
        chunk += 1
    frames = frames[: segment.frames]
    arrays = [np.asarray(f) for f in frames]
    if segment.next_keyframe is not None:
        with Image.open(segment.next_keyframe) as target_image:
            target = np.asarray(fit_fill(target_image, size))
        arrays = blend_tail(arrays, target)
    # Write into a temp folder and rename: a segment folder exists only when complete.
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save_frames(arrays, tmp)
    (tmp / DONE_MARKER).write_text(json.dumps({"frames": len(arrays), "seeds": seeds, "chunks": chunk}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    ctx.report((segment.index + 1) / segment_count, f"segment {segment.index + 1}/{segment_count} done")


def segment_files(clip: Clip) -> list[Path]:
    """A finished segment's artifacts: its frames and the marker that says it is complete."""
    folder = clip.frame_paths[0].parent
    return [*clip.frame_paths, folder / DONE_MARKER]


def _join_with_crossfade(frames: list[Image.Image], nxt: list[Image.Image]) -> list[Image.Image]:
    overlap = max(1, min(len(frames), len(nxt)) // 4)
    target = np.asarray(nxt[0])
    blended = [Image.fromarray(crossfade(np.asarray(f), target, (j + 1) / (overlap + 1)))
               for j, f in enumerate(frames[-overlap:])]
    return frames[:-overlap] + blended + list(nxt)


def blend_tail(frames: list[np.ndarray], target: np.ndarray) -> list[np.ndarray]:
    """Crossfade the last part of ``frames`` toward ``target`` (the next keyframe), ramping up."""
    tail = max(1, int(round(len(frames) * TAIL_FRACTION)))
    out = list(frames[: len(frames) - tail])
    for j, frame in enumerate(frames[len(frames) - tail:]):
        # Reaches (tail)/(tail+1) on the last frame; the next segment starts at the keyframe itself.
        out.append(crossfade(frame, target, (j + 1) / (tail + 1)))
    return out

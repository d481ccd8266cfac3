"""Motion: the storyboard becomes moving frames, told where to go as far as the engine allows.

The engine declares its conditioning (``engines.base.Conditioning``) and the stage plans the calls
to honour the keyframes with it (``motion_plan``): LTX-Video gets every keyframe at its frame index,
Wan each segment's start and end keyframe, SkyReels-V2 continues one long shot (or the video being
extended), and the first-frame fallbacks (SVD, CogVideoX) fade each segment's tail toward the next
keyframe — a crossfade the record names as such. Finished segments are kept on disk, so a resume or
an out-of-memory step-down does not make them again; each gets a small preview MP4 the Live job page plays.

  1. engine, model, size, frame rate and steps (the choice was made before the keyframes)
  2. plan the segments and write the record: conditions, frame indices, joins
  3. make what is missing under the memory manager (which steps down on OOM and re-calls this)
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from backend.media.clip import Clip, save_frames
from backend.media.imaging import fit_fill
from backend.media.segment_previews import make_preview
from backend.memory.plans import MemoryPlan
from backend.memory.preflight import motion_model
from backend.models.registry import ModelRef
from backend.prompting import PromptAnalysis
from backend.record import ConditionRecord, MotionRecord, SegmentRecord, SizeCap
from backend.stages import motion_plan
from backend.stages.context import StageContext
from backend.stages.engines import Conditioning, MotionEngine, engine_for
from backend.stages.engines.base import MotionRequest
from backend.stages.keyframe_style import apply_loras, lora_records, models_root_of
from backend.stages.motion_segments import TAIL_FRACTION, segment_frames
from backend.work import denoising_steps

log = logging.getLogger(__name__)

DONE_MARKER = "segment.json"
WINDOW_OVERLAP = 9  # frames a keyframe window continues from: 8k+1, two LTX latent frames
CONTINUATION_LEAD = 17  # source frames a continuation carries on from (SkyReels' recommended overlap)
JOINS = {
    Conditioning.KEYFRAMES: "conditioned: every keyframe at its frame index; long clips in windows that "
                            "continue from the previous window's last frames",
    Conditioning.FIRST_LAST: "conditioned: each segment starts on its keyframe and ends on the next",
    Conditioning.CONTINUATION: "continuation: one shot from the first keyframe (or the source video); "
                               "later keyframes are not conditioned",
    Conditioning.FIRST_FRAME: f"first-frame only: joins are crossfaded (the last {TAIL_FRACTION:.0%} of each "
                              "segment fades toward the next keyframe)",
}


@dataclass(frozen=True)
class MotionChoice:
    """Which motion model runs, with which plan, at what size and rate, and why."""

    ref: ModelRef
    plan: MemoryPlan
    size: tuple[int, int]
    max_frames: int
    fps: int  # the rate frames are made at (the requested one where the engine makes it natively)
    substitution: str | None  # another engine replaced the requested one: why
    reason: str = ""  # why this engine (an automatic choice, or the user's)

    @property
    def engine(self) -> MotionEngine:
        return engine_for(self.ref)

    def keyframes_for(self, requested: int, frames: int) -> int:
        """Storyboard keyframes to draw for a clip of ``frames``: a continuation engine only uses the first;
        a first-last engine needs one per ``max_frames`` so every segment is one call."""
        conditioning = self.engine.conditioning
        if conditioning == Conditioning.CONTINUATION:
            return 1
        if conditioning == Conditioning.FIRST_LAST:
            return max(requested, -(-(frames - 1) // max(1, self.max_frames - 1)) + 1)
        return requested


def choose_motion(model_set: str, engine: str, preset: str, fps: int, hardware: Any) -> MotionChoice:
    """Pick the motion model for this machine (the memory planner may substitute or cap it)."""
    ref, plan, warning, reason = motion_model(hardware, model_set, engine, preset)
    size = (plan.cap_width or ref.width, plan.cap_height or ref.height)
    max_frames = min(ref.frames, plan.cap_frames or ref.frames)
    return MotionChoice(ref, plan, size, max_frames, engine_for(ref).fps_for(ref, fps), warning, reason)


@dataclass(frozen=True)
class MotionInputs:
    analysis: PromptAnalysis
    keyframes: list[Path]  # the storyboard, in order
    frames_needed: int  # frames of the motion clip at ``choice.fps`` (extend: frame 0 repeats the source)
    choice: MotionChoice
    source_tail: tuple[Image.Image, ...] = ()  # extend: the source's last frames, for engines that continue
    positions: list[int] | None = None  # the storyboard's frame for each keyframe (None: evenly spread)
    segment_prompts: list[str] | None = None  # motion text between keyframe i and i+1 (None: the enhanced prompt)


@dataclass(frozen=True)
class MotionResult:
    segments: list[Clip]
    fps: int
    size: tuple[int, int]
    record: MotionRecord


def plan_segments(conditioning: Conditioning, keyframes: int, total: int, max_frames: int,
                  lead: int, positions: list[int] | None = None) -> list[motion_plan.SegmentPlan]:
    if conditioning == Conditioning.KEYFRAMES:
        return motion_plan.plan_keyframe_windows(keyframes, total, max_frames, WINDOW_OVERLAP, lead=lead,
                                                 positions=positions)
    if conditioning == Conditioning.FIRST_LAST:
        return motion_plan.plan_first_last(keyframes, total, positions)
    if conditioning == Conditioning.CONTINUATION:
        return motion_plan.plan_continuation(total, lead=lead)
    return motion_plan.plan_first_frame(keyframes, total, positions)


def segment_prompt(segment: motion_plan.SegmentPlan, conditioning: Conditioning, prompts: list[str] | None,
                   fallback: str) -> str:
    """The text a segment's calls get: its gap's motion prompt, or the gaps it spans joined in order."""
    if not prompts:
        return fallback
    if conditioning in (Conditioning.FIRST_LAST, Conditioning.FIRST_FRAME) and segment.first_keyframe is not None:
        return prompts[min(segment.first_keyframe, len(prompts) - 1)]
    if conditioning == Conditioning.KEYFRAMES and segment.anchors:
        first = max(0, segment.anchors[0].keyframe - 1)
        last = min(len(prompts), max(1, segment.anchors[-1].keyframe))
        return ", then ".join(prompts[first:last])
    return ", then ".join(prompts)  # one long shot: the whole progression


def run(ctx: StageContext, inputs: MotionInputs) -> MotionResult:
    spec, choice = ctx.spec, inputs.choice
    # 1. Engine, model and settings.
    ref, engine, size = choice.ref, choice.engine, choice.size
    steps = denoising_steps(spec, ref, "motion")
    continues = engine.conditioning in (Conditioning.KEYFRAMES, Conditioning.CONTINUATION)
    lead = min(len(inputs.source_tail), CONTINUATION_LEAD) if continues else 0
    if engine.conditioning == Conditioning.KEYFRAMES and lead:
        lead = WINDOW_OVERLAP

    # 2. The plan, and the record that says how the storyboard is honoured.
    segments = plan_segments(engine.conditioning, max(1, len(inputs.keyframes)), inputs.frames_needed,
                             choice.max_frames, lead, inputs.positions if inputs.keyframes else None)
    prompts = [segment_prompt(s, engine.conditioning, inputs.segment_prompts, inputs.analysis.enhanced_prompt)
               for s in segments]
    root = ctx.workdir / "segments"
    record = MotionRecord(
        model=ref.key, engine=engine.name, conditioning=engine.conditioning.value, fps=choice.fps,
        size=list(size), steps=steps, max_frames_per_call=choice.max_frames, join=JOINS[engine.conditioning],
        segments=[SegmentRecord(s.frames, start=s.start, overlap=s.overlap or None) for s in segments],
        conditions=_conditions(engine.conditioning, segments, len(inputs.keyframes), lead, inputs.positions),
        segment_prompts=prompts if inputs.segment_prompts else None,
        substitution=choice.substitution, engine_reason=choice.reason or None, step_downs=ctx.step_downs,
        capped=SizeCap(size[0], size[1], choice.max_frames) if choice.plan.capped else None,
    )
    for note in (choice.reason, choice.substitution):
        if note:
            ctx.log(note)
    if record.capped is not None:
        ctx.log(f"motion capped at {size[0]}×{size[1]}, {choice.max_frames} frames per call, to fit in memory")

    models_root = models_root_of(ctx)
    loras = spec.loras
    if choice.substitution and any(c.target == "motion" for c in loras):
        ctx.log("motion LoRAs not applied: they were chosen for the engine that was replaced")
        loras = ()

    # 3. Make what is missing; the memory manager re-calls this after an out-of-memory step-down.
    def generate(pipe: Any, plan: MemoryPlan) -> None:
        record.memory_plan = plan.to_dict()
        # Every job sets the motion LoRAs it wants (none: a cached pipeline loses the last job's).
        record.loras = apply_loras(pipe, loras, models_root, "motion", ref=ref) or None
        keyframes = [_load(path, size) for path in inputs.keyframes]
        before: list[Image.Image] = [fit_fill(f, size) for f in inputs.source_tail]
        base = MotionRequest(size, 0, choice.max_frames, steps, 0, inputs.analysis.enhanced_prompt,
                             inputs.analysis.negative_prompt, spec.motion_strength, choice.fps)
        for segment in segments:
            folder = root / f"segment_{segment.index:03d}"
            if not (folder / DONE_MARKER).exists():
                request = replace(base, prompt=prompts[segment.index])
                frames, seeds = segment_frames(ctx, engine, ref, pipe, plan, segment, request, keyframes, before,
                                               len(segments))
                _save_segment(frames, seeds, folder)
                make_preview(folder, choice.fps, len(segments))  # playable on the Live job page from now on
                ctx.report((segment.index + 1) / len(segments), f"segment {segment.index + 1}/{len(segments)} done")
            if segment.index + 1 < len(segments) and segments[segment.index + 1].overlap:
                before = [_load(p, size) for p in sorted(folder.glob("*.png"))[-WINDOW_OVERLAP:]]

    if not all((root / f"segment_{s.index:03d}" / DONE_MARKER).exists() for s in segments):
        ctx.run(ref, generate, plan=choice.plan)
    if record.loras is None:  # every segment was kept: nothing was loaded, the record still names the files
        record.loras = lora_records(loras, models_root, "motion") or None
    clips = [Clip.from_folder(root / f"segment_{s.index:03d}", choice.fps) for s in segments]
    record.segment_seeds = [json.loads((root / f"segment_{s.index:03d}" / DONE_MARKER).read_text())["seeds"]
                            for s in segments]
    return MotionResult(clips, choice.fps, size, record)


def _conditions(conditioning: Conditioning, segments: list[motion_plan.SegmentPlan], keyframes: int,
                lead: int, positions: list[int] | None = None) -> list[ConditionRecord]:
    """Each keyframe (or source frames) the calls are conditioned on, at its frame of the motion clip."""
    if conditioning == Conditioning.KEYFRAMES:
        found = [ConditionRecord(a.keyframe, s.start + a.frame - s.keep_from, segment=s.index)
                 for s in segments for a in s.anchors]
        if lead:
            found.insert(0, ConditionRecord(None, 0, segment=0, kind="source video", frames=lead))
        return found
    if conditioning == Conditioning.FIRST_LAST:
        positions = motion_plan.keyframe_positions(keyframes, sum(s.frames for s in segments), positions)
        return [ConditionRecord(k, positions[k], segment=max(0, k - 1) if kind == "last" else k, kind=kind)
                for s in segments for k, kind in ((s.first_keyframe, "first"), (s.last_keyframe, "last"))
                if k is not None]
    if lead:
        return [ConditionRecord(None, 0, segment=0, kind="source video", frames=lead)]
    return [ConditionRecord(s.first_keyframe, s.start, segment=s.index, kind="first") for s in segments
            if s.first_keyframe is not None]


def _load(path: Path, size: tuple[int, int]) -> Image.Image:
    with Image.open(path) as image:
        return fit_fill(image.convert("RGB"), size)


def _save_segment(frames: list[Image.Image], seeds: list[int], folder: Path) -> None:
    """Write into a temp folder and rename: a segment folder exists only when complete."""
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save_frames(frames, tmp)
    (tmp / DONE_MARKER).write_text(json.dumps({"frames": len(frames), "seeds": seeds}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def segment_files(clip: Clip) -> list[Path]:
    """A finished segment's artifacts: its frames and the marker that says it is complete."""
    folder = clip.frame_paths[0].parent
    return [*clip.frame_paths, folder / DONE_MARKER]

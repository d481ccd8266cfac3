"""How much work a job is: denoising steps per model call, and work units per stage.

The one rule for step counts (stages run it, the pre-flight prices it, the ETA predicts it), and the
units the ETA is calibrated in: a stage's seconds divided by its units gives seconds per unit on this
machine, keyed by the model that did the work (SDXL-Turbo at 4 steps is not SDXL at 30).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.models.registry import ModelRef, keyframe_model_for, motion_model_for

if TYPE_CHECKING:  # pragma: no cover
    from backend.record import JobRecord
    from backend.spec import JobSpec

TINY_STEPS = 2  # the tiny test models produce noise anyway; keep test jobs fast
MODEL_STAGES = ("keyframes", "motion")


def denoising_steps(spec: "JobSpec", ref: ModelRef, stage: str) -> int:
    """Steps per call of ``ref`` in ``stage``: the user's number, else the model's own, else the preset's."""
    if spec.steps:
        return spec.steps
    if ref.is_tiny:
        return TINY_STEPS
    if ref.default_steps:  # step-distilled models (SDXL-Turbo) are made for their own count
        return ref.default_steps
    preset = spec.preset_values
    return preset.keyframe_steps if stage == "keyframes" else preset.motion_steps


def stage_model(spec: "JobSpec", stage: str) -> ModelRef | None:
    """The model that does ``stage``'s work as the spec asks (before any low-memory substitution)."""
    if stage == "keyframes":
        return keyframe_model_for(spec.model_set, spec.preset)
    if stage == "motion":  # "auto" is planned as its first choice, LTX-Video
        return motion_model_for(spec.model_set, "ltx" if spec.engine == "auto" else spec.engine, spec.preset)
    return None


def planned_units(spec: "JobSpec", stage: str) -> float:
    """The units ``measured_units`` will count for ``stage``, predicted from the spec before the job runs."""
    ref = stage_model(spec, stage)
    if stage == "keyframes" and ref is not None:
        return float(spec.keyframe_count() * denoising_steps(spec, ref, stage))
    if stage == "motion" and ref is not None:
        return spec.duration * ref.fps * denoising_steps(spec, ref, stage)
    if stage == "finish":
        return float(spec.total_frames)
    return 1.0


def measured_units(record: "JobRecord") -> dict[str, float]:
    """Units of work each stage of a finished job did (for seconds-per-unit calibration)."""
    stages = record.stages
    units: dict[str, float] = {}
    if stages.keyframes is not None:
        units["keyframes"] = float(len(stages.keyframes.prompts) * stages.keyframes.steps)
    if stages.motion is not None:
        units["motion"] = float(sum(s.frames for s in stages.motion.segments) * stages.motion.steps)
    if stages.finish is not None:
        units["finish"] = float(stages.finish.frames)
    return units

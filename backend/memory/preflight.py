"""Pre-flight: before a job starts, what each stage will load, how, and what it will cost.

``preflight(spec, hardware)`` answers per stage (keyframes, motion, finish): the model, the memory level
chosen, estimated peak VRAM and RAM, an ETA class, any cap on resolution/frames, whether the previous
stage's model stays resident, and warnings — e.g. when SVD cannot fit even with sequential offload and
the low-memory engine takes over. The UI and ``python -m backend plan`` show it; it uses the same
functions the MemoryManager decides with, so the forecast and the run agree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from backend.memory.estimates import PROCESS_RAM_GB, call_seconds, estimate, eta_class, native_workload
from backend.memory.hardware import HardwareProfile
from backend.memory.plans import MemoryPlan, fit_plan, plan_workload, ram_budget_gb, vram_budget_gb
from backend.memory.residency import Held, to_evict
from backend.models.registry import MODELS, ModelRef, keyframe_model_for, model_for, motion_model_for
from backend.work import denoising_steps

if TYPE_CHECKING:  # pragma: no cover
    from backend.memory.remembered import RememberedLevels
    from backend.spec import JobSpec

FINISH_SECONDS_PER_1080P_FRAME_2_CORES = 0.07  # one ffmpeg pass, lanczos + grade + sharpen + x264 (measured)
FINISH_RAM_GB = 0.5


@dataclass(frozen=True)
class StagePlan:
    stage: str  # "keyframes" | "motion" | "finish"
    model: str  # registry key, or "ffmpeg"
    label: str
    level: str  # memory level, "cpu" for the CPU, "skipped"
    vram_peak_gb: float
    ram_peak_gb: float
    eta_class: str  # "seconds" | "minutes" | "long"
    eta_seconds: float
    calls: int = 1  # pipeline calls (keyframes, clips)
    plan: dict | None = None  # MemoryPlan.to_dict()
    settings: str = ""  # the plan in one line
    cap: dict | None = None  # {"width", "height", "frames"} when the work was capped to fit
    residency: str = ""  # what happens to the previous stage's model
    note: str = ""  # why a stage is skipped
    fits: bool = True
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preflight:
    hardware: HardwareProfile
    stages: tuple[StagePlan, ...]
    engine: str  # registry key of the motion model that will actually run
    fallback: str | None = None  # set when another engine (SVD, the low-memory one) replaced the requested one
    warnings: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return all(stage.fits for stage in self.stages)

    @property
    def eta_class(self) -> str:
        return eta_class(sum(stage.eta_seconds for stage in self.stages))

    def stage(self, name: str) -> StagePlan:
        return next(s for s in self.stages if s.stage == name)

    def to_dict(self) -> dict:
        return {
            "hardware": self.hardware.to_dict(), "engine": self.engine, "fallback": self.fallback,
            "fits": self.fits, "eta_class": self.eta_class, "warnings": list(self.warnings),
            "stages": [{**asdict(s), "warnings": list(s.warnings)} for s in self.stages],
        }

    def lines(self) -> list[str]:
        """Human-readable rendering, one stage per block."""
        out = [f"Machine: {self.hardware.summary()}"]
        for s in self.stages:
            if s.level == "skipped":
                out.append(f"{s.stage:<9} skipped: {s.note}")
                continue
            vram = f"{s.vram_peak_gb:.1f} GB VRAM" if s.vram_peak_gb else "no VRAM"
            out.append(f"{s.stage:<9} {s.label} [{s.model}] x{s.calls}: {s.settings or s.level}")
            out.append(f"{'':<9} peak {vram}, {s.ram_peak_gb:.1f} GB RAM; ETA {s.eta_class}")
            if s.residency:
                out.append(f"{'':<9} {s.residency}")
            out.extend(f"{'':<9} ! {w}" for w in s.warnings)
        out.extend(f"! {w}" for w in self.warnings)
        out.append(f"Overall: ETA {self.eta_class}" + ("" if self.fits else "; does NOT fit this machine"))
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


AUTO_ORDER = ("ltx", "wan", "skyreels", "svd", "cogvideox")  # engines told where to go come first
FALLBACK_ROLES = ("low-memory", "svd")  # tried, in order, when the requested engine cannot fit at all


def motion_model(hardware: HardwareProfile, model_set: str, engine: str,
                 preset: str = "standard") -> tuple[ModelRef, MemoryPlan, str | None, str]:
    """The motion model that will run, its plan, a warning when another engine replaced the requested
    one, and why this engine.

    ``engine="auto"`` takes the first engine of ``AUTO_ORDER`` that fits without caps (keyframe-faithful
    whenever one fits). When even the lowest plan cannot fit the requested engine, the low-memory engine
    (a small LTX-Video, keyframe-faithful too) and then SVD are tried. If nothing fits, the requested
    engine is kept and its plan says ``fits=False``.
    """
    if engine == "auto":
        for role in AUTO_ORDER:
            ref = motion_model_for(model_set, role, preset)
            plan = fit_plan(hardware, ref)
            if plan.fits and not plan.capped:
                return ref, plan, None, (f"engine chosen automatically: {ref.label} ({_CONDITIONING[ref.conditioning]}"
                                         f") is the most storyboard-faithful one that fits this machine")
        engine = AUTO_ORDER[0]
    requested = motion_model_for(model_set, engine, preset)
    requested_plan = fit_plan(hardware, requested)
    if requested_plan.fits:
        return requested, requested_plan, None, ""
    for role in FALLBACK_ROLES:
        substitute = model_for(model_set, role)
        if substitute.key == requested.key:
            continue
        plan = fit_plan(hardware, substitute)
        if plan.fits:
            lowest = "sequential offload" if requested_plan.device == "cuda" else "the CPU and all its RAM"
            kind = "the low-memory engine " if substitute.low_memory else ""
            return substitute, plan, (f"{requested.label} cannot fit even with {lowest} ({requested_plan.reason}): "
                                      f"{kind}{substitute.key} will be used"), ""
    return requested, requested_plan, None, ""


_CONDITIONING = {"keyframes": "every keyframe at its frame", "first_last": "start and end keyframe per segment",
                 "continuation": "one continuous shot", "first_frame": "first frame only, crossfaded joins"}


def preflight(spec: "JobSpec", hardware: HardwareProfile, remembered: "RememberedLevels | None" = None) -> Preflight:
    """What the job ``spec`` will cost on ``hardware``, stage by stage (and what it needed here last time)."""
    motion_ref, motion_plan, fallback_warning, reason = motion_model(hardware, spec.model_set, spec.engine,
                                                                     spec.preset)
    keyframe_ref = keyframe_model_for(spec.model_set, spec.preset)
    warnings = [w for w in (fallback_warning, reason) if w]
    wanted = 1 if motion_ref.conditioning == "continuation" else spec.keyframe_count()
    count = wanted - (0 if spec.mode == "t2v" else 1)  # i2v/extend bring the first one
    keyframes = (_model_stage("keyframes", keyframe_ref, fit_plan(hardware, keyframe_ref), count,
                              denoising_steps(spec, keyframe_ref, "keyframes"), hardware, remembered)
                 if count > 0 else _skipped("keyframes", keyframe_ref, "the uploaded image is the keyframe"))

    clips = _clips(spec, motion_plan, motion_ref)
    motion = _model_stage("motion", motion_ref, motion_plan, clips,
                          denoising_steps(spec, motion_ref, "motion"), hardware, remembered)
    motion = _with_residency(motion, keyframes, hardware)
    finish = _finish_stage(spec, hardware)
    return Preflight(hardware, (keyframes, motion, finish), motion_ref.key,
                     fallback=motion_ref.key if fallback_warning else None,
                     warnings=tuple(warnings) + _ram_warnings(hardware, (keyframes, motion)))


def _model_stage(
    stage: str, ref: ModelRef, plan: MemoryPlan, calls: int, steps: int, hardware: HardwareProfile,
    remembered: "RememberedLevels | None" = None,
) -> StagePlan:
    workload = plan_workload(ref, plan)
    if remembered is not None:  # an earlier job of this shape on this GPU had to step down: start there
        plan = remembered.start_at(remembered.key(hardware, ref, workload), plan)
    est = estimate(ref, plan, workload)
    seconds = calls * call_seconds(ref, plan, workload, steps, hardware)
    warnings = []
    if plan.capped:
        native = native_workload(ref)
        warnings.append(f"{ref.label} capped to {workload.width}x{workload.height}, {workload.frames} frame(s) "
                        f"per call (native {native.width}x{native.height}, {native.frames}) to fit this machine")
    if not plan.fits:
        warnings.append(f"{ref.label} {plan.reason}; it will be tried, and may fail")
    if ref.is_tiny:
        warnings.append(f"{ref.label}: test model set, the output is noise")
    if remembered is not None and plan.level != fit_plan(hardware, ref).level:
        warnings.append(f"last time on this GPU {ref.label} needed {plan.level.replace('_', ' ')}")
    cap = ({"width": workload.width, "height": workload.height, "frames": workload.frames}
           if plan.capped else None)
    return StagePlan(stage, ref.key, ref.label, plan.level, round(est.vram_peak_gb, 2), round(est.ram_peak_gb, 2),
                     eta_class(seconds), round(seconds, 1), calls, plan.to_dict(), plan.describe(), cap,
                     fits=plan.fits, warnings=tuple(warnings))


def _skipped(stage: str, ref: ModelRef, why: str) -> StagePlan:
    return StagePlan(stage, ref.key, ref.label, "skipped", 0.0, 0.0, "seconds", 0.0, calls=0, note=why)


def _clips(spec: "JobSpec", plan: MemoryPlan, ref: ModelRef) -> int:
    """Pipeline calls of the motion stage: windows of a keyframe engine, one shot, or one per keyframe gap."""
    if ref.conditioning == "keyframes":
        return max(1, math.ceil(spec.duration * ref.fps / max(1, plan.cap_frames or ref.frames)))
    if ref.conditioning == "continuation":
        return 1
    return max(1, spec.keyframe_count() - 1)


def _with_residency(motion: StagePlan, keyframes: StagePlan, hardware: HardwareProfile) -> StagePlan:
    """Whether the keyframe model can stay loaded while the motion model runs (same rule as the manager)."""
    if keyframes.level == "skipped" or keyframes.plan is None:
        return motion
    kf_ref, kf_plan = MODELS[keyframes.model], MemoryPlan.from_dict(keyframes.plan)
    kf = estimate(kf_ref, kf_plan, plan_workload(kf_ref, kf_plan))
    base = PROCESS_RAM_GB[kf_plan.device]
    evict = to_evict([Held(kf_ref.key, kf.vram_resting_gb, kf.ram_resting_gb)],
                     need_vram_gb=motion.vram_peak_gb, need_ram_gb=max(0.0, motion.ram_peak_gb - base),
                     vram_budget_gb=vram_budget_gb(hardware), ram_budget_gb=ram_budget_gb(hardware) - base)
    if evict:
        return replace(motion, residency=f"unloads {kf_ref.key} first: both do not fit at once")
    where = f"{kf.vram_resting_gb:.1f} GB VRAM" if kf.vram_resting_gb else f"{kf.ram_resting_gb:.1f} GB RAM"
    return replace(motion, residency=f"keeps {kf_ref.key} loaded alongside ({where}), ready for the next job",
                   vram_peak_gb=round(motion.vram_peak_gb + kf.vram_resting_gb, 2),
                   ram_peak_gb=round(motion.ram_peak_gb + kf.ram_resting_gb, 2))


def _finish_stage(spec: "JobSpec", hardware: HardwareProfile) -> StagePlan:
    pixels = spec.width * spec.height / (1920 * 1080)
    seconds = spec.total_frames * pixels * FINISH_SECONDS_PER_1080P_FRAME_2_CORES * 2 / max(1, hardware.cpu_count)
    return StagePlan("finish", "ffmpeg", "ffmpeg finishing (CPU)", "cpu", 0.0,
                     round(PROCESS_RAM_GB["cpu"] + FINISH_RAM_GB, 2), eta_class(seconds), round(seconds, 1))


def _ram_warnings(hardware: HardwareProfile, stages: tuple[StagePlan, ...]) -> tuple[str, ...]:
    worst = max(stages, key=lambda s: s.ram_peak_gb)
    if worst.ram_peak_gb > hardware.ram_total_gb * 0.95:
        return (f"the {worst.stage} stage needs about {worst.ram_peak_gb:.0f} GB of RAM and this machine has "
                f"{hardware.ram_total_gb:.0f} GB: expect heavy swapping; close other programs or add RAM",)
    if worst.ram_peak_gb > hardware.ram_free_gb:
        return (f"the {worst.stage} stage needs about {worst.ram_peak_gb:.0f} GB of RAM, more than is free now "
                f"({hardware.ram_free_gb:.0f} GB): close other programs first",)
    return ()

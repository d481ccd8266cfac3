"""MemoryManager: loads pipelines under a memory plan, keeps them resident, steps down on OOM.

Stages ask it for a pipeline and hand it the work to run; the manager owns every decision about
placement and the retry-after-OOM loop, so no stage ever calls ``.to("cuda")`` itself.

Two seams keep it testable without a GPU: ``placer`` (default ``apply_plan``) puts a loaded pipeline
where the plan says, and ``loader`` (default ``load_pipeline``) reads it from disk. Tests pass a placer
that applies the plan's VAE/chunking settings but keeps the pipeline on the CPU.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, TypeVar

from backend.errors import NotEnoughRam, OutOfMemoryAfterAllPlans
from backend.memory.decode_guard import DecodeGuard
from backend.memory.estimates import PROCESS_RAM_GB, Workload, estimate
from backend.memory.hardware import HardwareProfile, refreshed
from backend.memory.oom import error_summary, free_memory, is_oom_error
from backend.memory.plans import (
    MemoryPlan,
    apply_component_settings,
    apply_plan,
    fit_plan,
    plan_workload,
    ram_budget_gb,
    vram_budget_gb,
)
from backend.memory.remembered import RememberedLevels
from backend.memory.residency import Held, to_evict
from backend.models.loader import load_pipeline
from backend.models.registry import ModelRef
from backend.record import StepDown

log = logging.getLogger(__name__)

T = TypeVar("T")
RAM_REFUSAL_FACTOR = 1.0  # refuse when the estimate is over what is available (estimates carry their margin)
Placer = Callable[[Any, MemoryPlan], Any]
Loader = Callable[..., Any]  # (ref, models_root, *, dtype) -> pipeline


@dataclass
class _Resident:
    ref: ModelRef
    plan: MemoryPlan
    pipe: Any
    vram_gb: float  # held on the GPU between calls
    ram_gb: float  # weights held in RAM between calls


class MemoryManager:
    def __init__(
        self, hardware: HardwareProfile, models_root: Path, *, placer: Placer = apply_plan,
        loader: Loader = load_pipeline, remembered: RememberedLevels | None = None,
    ) -> None:
        self.hardware = hardware
        self.models_root = Path(models_root)
        self._placer = placer
        self._loader = loader
        self._resident: OrderedDict[str, _Resident] = OrderedDict()  # least recently used first
        self.remembered = remembered or RememberedLevels(None)

    def plan(self, ref: ModelRef, workload: Workload | None = None) -> MemoryPlan:
        """The plan for ``ref`` (native workload when None), capped where even the lowest level cannot fit."""
        return fit_plan(self.hardware, ref, workload)

    def resident(self) -> list[str]:
        """Keys of the loaded models, least recently used first."""
        return list(self._resident)

    def pipeline(self, ref: ModelRef, plan: MemoryPlan) -> Any:
        """A pipeline for ``ref`` placed per ``plan``, reused when already resident with that plan."""
        resident = self._resident.get(ref.key)
        if resident is not None and resident.plan.key() == plan.key():
            self._resident.move_to_end(ref.key)
            if resident.plan != plan:
                apply_component_settings(resident.pipe, plan)
                resident.plan = plan
            return resident.pipe
        self.release(ref.key)
        self._make_room(ref, plan)
        pipe = self._placer(self._loader(ref, self.models_root, dtype=plan.torch_dtype), plan)
        est = estimate(ref, plan, plan_workload(ref, plan))
        self._resident[ref.key] = _Resident(ref, plan, pipe, est.vram_resting_gb, est.ram_resting_gb)
        return pipe

    def release(self, key: str | None = None) -> None:
        """Drop one resident pipeline (or all) and give the memory back."""
        keys = [key] if key is not None else list(self._resident)
        dropped = [self._resident.pop(k) for k in keys if k in self._resident]
        if dropped:
            del dropped
            free_memory()

    def run(
        self, ref: ModelRef, work: Callable[[Any, MemoryPlan], T], *, steps: list[StepDown],
        workload: Workload | None = None, plan: MemoryPlan | None = None,
    ) -> T:
        """Run ``work(pipe, plan)``; after an out-of-memory error, make room or step down and call it again.

        ``work`` must resume from its own artifacts (e.g. skip keyframes already saved), so a retry does
        not repeat finished work. Loading counts too: an OOM while moving weights to the GPU is handled
        like one while sampling. The first OOM unloads the other resident models and retries the same
        plan; later ones step the plan down. An OOM inside the VAE decode is retried lighter within the
        same call, without re-sampling. Each of these is appended to ``steps`` for the job record, and
        the level that succeeds is remembered: the next job of the same shape starts there. ``plan``
        pins the starting plan (tests, benchmarks); by default it is ``self.plan``.
        """
        self.refresh()
        plan = plan or self.plan(ref, workload)
        shape = self.remembered.key(self.hardware, ref, plan_workload(ref, plan))
        plan = self.remembered.start_at(shape, plan)
        self._check_ram(ref, plan)
        tried: list[str] = []
        made_room = False
        while True:
            pipe = guard = None
            try:
                pipe = self.pipeline(ref, plan)  # loading onto the GPU can run out of memory as well
                guard = DecodeGuard(pipe, plan, steps, on_relief=lambda lighter: self._note_relief(ref, lighter))
                with guard:
                    result = work(pipe, plan)
                self.remembered.remember(shape, guard.plan)
                return result
            except Exception as exc:  # noqa: BLE001 - only OOMs are handled; the rest re-raise
                if not is_oom_error(exc):
                    if pipe is not None:
                        _free_model_hooks(pipe)
                    raise
                failure = error_summary(exc)
            # Recover outside the except block: the traceback would pin the tensors we want freed.
            plan = guard.plan if guard is not None else plan  # a decode retry may have lightened it
            del pipe, guard
            self.release(ref.key)
            others = [key for key in self._resident if key != ref.key]
            if others and not made_room:  # the cheapest relief: what other stages left on the GPU
                made_room = True
                self.release()
                log.warning("out of memory in %s at %s (%s); unloaded %s and trying again", ref.key,
                            plan.describe(), failure, ", ".join(others))
                steps.append(StepDown(model=ref.key, kind="evict", error=failure,
                                      action=f"unloaded {', '.join(others)} and tried {plan.describe()} again",
                                      from_plan=plan.to_dict(), to_plan=plan.to_dict()))
                continue
            tried.append(plan.describe())
            lower = plan.step_down()
            if lower is None:
                raise OutOfMemoryAfterAllPlans(_all_failed(ref, tried), tried)
            log.warning("out of memory in %s at %s (%s); stepping down to %s", ref.key, plan.describe(), failure,
                        lower.describe())
            steps.append(StepDown(
                model=ref.key, kind="step_down", error=failure,
                action=f"reloaded at {lower.describe()} and resumed from the stage's saved work",
                from_plan=plan.to_dict(), to_plan=lower.to_dict(),
            ))
            plan = lower

    def refresh(self) -> None:
        """Read free VRAM and RAM again (another program may have taken some); what our resident models
        hold counts as ours, since the planner makes room among them itself."""
        now = refreshed(self.hardware)
        if now is self.hardware:
            return
        held = sum(r.vram_gb for r in self._resident.values())
        self.hardware = replace(now, vram_free_gb=min(now.vram_total_gb, now.vram_free_gb + held))

    def _check_ram(self, ref: ModelRef, plan: MemoryPlan) -> None:
        """Refuse a plan whose estimated peak RAM is over what is available: swapping to death is worse."""
        available = self.hardware.ram_free_gb + sum(r.ram_gb for r in self._resident.values())
        if plan.est_ram_gb and plan.est_ram_gb > available * RAM_REFUSAL_FACTOR:
            raise NotEnoughRam(
                f"{ref.label or ref.key} needs about {plan.est_ram_gb:.0f} GB of system RAM at {plan.describe()}, "
                f"and {available:.0f} GB is available: close other programs, lower the resolution or duration, "
                "or choose a lighter engine.")

    def after_job(self) -> None:
        """gc + empty the CUDA cache; resident models stay for the next job."""
        free_memory()

    def _note_relief(self, ref: ModelRef, plan: MemoryPlan) -> None:
        resident = self._resident.get(ref.key)
        if resident is not None:
            resident.plan = plan

    def _make_room(self, ref: ModelRef, plan: MemoryPlan) -> None:
        """Unload least recently used models until ``ref`` fits beside the others."""
        if not self._resident:
            return
        est = estimate(ref, plan, plan_workload(ref, plan))
        base = PROCESS_RAM_GB[plan.device]
        held = [Held(k, r.vram_gb, r.ram_gb) for k, r in self._resident.items()]
        for key in to_evict(held, need_vram_gb=est.vram_peak_gb, need_ram_gb=est.ram_peak_gb - base,
                            vram_budget_gb=vram_budget_gb(self.hardware),
                            ram_budget_gb=ram_budget_gb(self.hardware) - base):
            log.info("unloading %s to make room for %s", key, ref.key)
            self.release(key)


def _free_model_hooks(pipe: Any) -> None:
    """After a failed call, move offloaded models back to the CPU so the pipeline stays usable."""
    free_hooks = getattr(pipe, "maybe_free_model_hooks", None)
    if callable(free_hooks):
        free_hooks()


def _all_failed(ref: ModelRef, tried: list[str]) -> str:
    return (f"{ref.label or ref.key} ran out of GPU memory with every memory plan tried ({'; '.join(tried)}). "
            "To go on: lower the resolution, frame count or duration, close other programs that use the GPU "
            "(nvidia-smi lists them), or choose the light engine (LTX-Video 2B).")

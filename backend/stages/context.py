"""The narrow context a stage gets: progress, cancel, log lines, memory, its folder.

Stages never reach into the orchestrator, the store or the UI. They call ``ctx.report(...)``,
``ctx.check_cancelled()`` and ``ctx.log(...)``; for models they ask ``ctx.plan(ref)`` and
``ctx.run(ref, work)`` and never see the memory manager itself. The job layer decides what a
report means (store, snapshot, ETA) and where a log line goes (the job log the UI shows).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar

from backend.errors import JobCancelled
from backend.record import StepDown

if TYPE_CHECKING:  # pragma: no cover
    from backend.memory.estimates import Workload
    from backend.memory.plans import MemoryPlan
    from backend.models.registry import ModelRef
    from backend.spec import JobSpec

T = TypeVar("T")


class ProgressSink(Protocol):
    def __call__(
        self, fraction: float, message: str, step: int | None, total: int | None, preview: Path | None
    ) -> None: ...


class MemoryAccess(Protocol):
    """What a stage may ask of the memory layer (``MemoryManager`` provides it)."""

    def plan(self, ref: "ModelRef", workload: "Workload | None" = None) -> "MemoryPlan": ...

    def run(self, ref: "ModelRef", work: Callable[[Any, "MemoryPlan"], T], *, steps: list[StepDown],
            workload: "Workload | None" = None, plan: "MemoryPlan | None" = None) -> T: ...


def _nowhere(message: str) -> None:
    """Where log lines go when nobody listens (a stage run outside a job, e.g. in a benchmark)."""


@dataclass
class StageContext:
    """What one stage of one job may see and do."""

    job_id: str
    stage: str
    spec: "JobSpec"
    workdir: Path
    cancel_event: threading.Event
    sink: ProgressSink
    memory: MemoryAccess | None = None  # None for stages that run no model
    notes: Callable[[str], None] = _nowhere  # the job log (the UI's "Log"), one line per call
    step_downs: list[StepDown] = field(default_factory=list)  # memory escalations during this stage

    def report(
        self,
        fraction: float,
        message: str = "",
        *,
        step: int | None = None,
        total: int | None = None,
        preview: Path | None = None,
    ) -> None:
        """Progress within this stage, 0..1; ``preview`` is an image file worth showing (a keyframe)."""
        self.sink(min(1.0, max(0.0, fraction)), message, step, total, preview)

    def log(self, message: str) -> None:
        """A line for the job's log (what the user reads under "Log"): a substitution, a cap, a note."""
        self.notes(f"{self.stage}: {message}")

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled(f"cancelled during {self.stage}")

    # --- memory: the plan for a model, and running work under it (steps down on OOM) ------------------
    def plan(self, ref: "ModelRef", workload: "Workload | None" = None) -> "MemoryPlan":
        return self._memory().plan(ref, workload)

    def run(self, ref: "ModelRef", work: Callable[[Any, "MemoryPlan"], T], *,
            plan: "MemoryPlan | None" = None) -> T:
        """``work(pipe, plan)`` with ``ref`` loaded per ``plan``; re-called at a lower plan after an OOM."""
        return self._memory().run(ref, work, steps=self.step_downs, plan=plan)

    def _memory(self) -> MemoryAccess:
        if self.memory is None:
            raise RuntimeError(f"the {self.stage} stage was given no memory access")
        return self.memory

    def step_callback(
        self, total_steps: int, *, start: float = 0.0, span: float = 1.0, label: str = "step"
    ) -> Callable[..., dict]:
        """A diffusers ``callback_on_step_end`` that reports each step and cancels by raising.

        Raising (rather than setting ``pipe._interrupt``) is what stops SVD, which never reads the
        interrupt flag, and it also skips the VAE decode of a cancelled run.
        """

        def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            self.check_cancelled()
            done = step + 1
            self.report(start + span * done / max(1, total_steps), f"{label} · step {done}/{total_steps}",
                        step=done, total=total_steps)
            return kwargs

        return on_step_end

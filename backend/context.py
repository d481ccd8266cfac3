"""The narrow context a stage gets: report progress, check for cancel, record facts, find its folder.

Stages never reach into the orchestrator or the UI. They call ``ctx.report(...)`` and
``ctx.check_cancelled()``; the orchestrator decides what that means (store, snapshot, ETA).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from backend.paths import RuntimePaths
    from backend.spec import JobSpec


class JobCancelled(Exception):
    """Raised inside a stage (typically from a diffusers step callback) when the user cancels."""


class ProgressSink(Protocol):
    def __call__(
        self, fraction: float, message: str, step: int | None, total: int | None, preview: Path | None
    ) -> None: ...


@dataclass
class StageContext:
    """What one stage of one job may see and do."""

    job_id: str
    stage: str
    spec: "JobSpec"
    workdir: Path
    paths: "RuntimePaths"
    cancel_event: threading.Event
    sink: ProgressSink
    memory: Any = None  # backend.memory.MemoryManager; Any to keep this module torch-free
    record: dict[str, Any] = field(default_factory=dict)  # facts for the job record (ids, seeds, settings)
    log: Callable[[str], None] = lambda message: None

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

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled(f"cancelled during {self.stage}")

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

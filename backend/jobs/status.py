"""What callers see of a job: an immutable ``JobStatus`` snapshot, and the live progress behind it.

The store keeps the durable part (state, stage, overall fraction, the record); the process running
the job keeps more detail in memory (step, ETA, previews, log lines) in a ``LiveProgress``, and the
orchestrator merges the two into a snapshot that any thread may hold.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from backend.jobs.store import QUEUED, RUNNING
from backend.record import JobRecord

LOG_LINES = 200


@dataclass(frozen=True)
class JobStatus:
    """An immutable snapshot of one job, safe to hand to any thread."""

    id: str
    state: str
    spec: dict[str, Any]
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    step: int | None = None
    total_steps: int | None = None
    eta_seconds: float | None = None
    previews: tuple[str, ...] = ()
    log: tuple[str, ...] = ()
    output: str | None = None
    sidecar: str | None = None
    error: str | None = None
    created: float = 0.0
    started: float | None = None  # when this run began, less the seconds of the job's earlier runs
    finished: float | None = None
    record: JobRecord | None = None  # None until the job's first stage has finished

    @property
    def is_active(self) -> bool:
        return self.state in (QUEUED, RUNNING)

    @property
    def elapsed(self) -> float | None:
        """Seconds the job has run: its earlier runs and this one, not the time it sat stopped between them
        (the store starts a resumed run's clock earlier by the earlier runs' seconds: ``database.ADDED_COLUMNS``)."""
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


@dataclass
class LiveProgress:
    """Progress of the job this process is running (more detail than the store keeps)."""

    cancel: threading.Event = field(default_factory=threading.Event)
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    step: int | None = None
    total: int | None = None
    eta: float | None = None
    previews: list[str] = field(default_factory=list)
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    last_store_write: float = 0.0
    handover: bool = False  # stopped because this process leaves: the job goes back to the queue, not cancelled

    def add_log(self, line: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {line}")

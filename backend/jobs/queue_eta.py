"""ETAs for the queue: when each waiting job starts and ends, and when the whole queue is done.

A job's run time is summed stage by stage: seconds per work unit measured on this machine
(``Calibration``, keyed by stage, model and GPU) times the stage's planned units where an earlier job
measured them, else the memory planner's model-based estimate for that stage (``calibrated`` says
which). The running job counts with what is left of it: its live ETA where this process runs it, else
its estimate scaled by the part not yet done. ``queue_eta`` is pure (the estimator is passed in).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from backend.errors import StudioError
from backend.jobs.store import RUNNING
from backend.spec import JobSpec

if TYPE_CHECKING:  # pragma: no cover
    from backend.jobs.eta import Calibration
    from backend.jobs.orchestrator import VideoGenerator
    from backend.memory import HardwareProfile

log = logging.getLogger(__name__)

MODEL_STAGES = ("keyframes", "motion", "finish")  # the stages that take time (analyze and assemble: moments)
Estimate = tuple[float | None, bool]  # (seconds, calibrated on this machine)


class QueuedJob(Protocol):  # what a JobStatus offers
    id: str
    state: str
    spec: dict[str, Any]
    fraction: float
    eta_seconds: float | None


@dataclass(frozen=True)
class JobEta:
    job_id: str
    seconds: float | None  # how long it runs (for the running job: what is left of it); None = unknown
    starts_in: float | None  # seconds from now until it starts (0 for the running job)
    done_in: float | None  # seconds from now until it is done
    calibrated: bool  # from this machine's measured timings (else the planner's estimate)


@dataclass(frozen=True)
class QueueEta:
    jobs: dict[str, JobEta]
    total: float | None  # seconds until the whole queue is done; None when a job's time is unknown
    calibrated: bool  # every estimate came from measured timings

    def get(self, job_id: str) -> JobEta | None:
        return self.jobs.get(job_id)


def job_seconds(spec: JobSpec, calibration: "Calibration", hardware: "HardwareProfile") -> Estimate:
    """Expected seconds for a whole run of ``spec``, and whether every model stage was calibrated."""
    measured = calibration.estimates(spec)
    planned: dict[str, float] = {}
    if any(not measured.get(stage) for stage in MODEL_STAGES):
        try:
            from backend.memory.preflight import preflight

            planned = {s.stage: s.eta_seconds for s in preflight(spec, hardware).stages}
        except (StudioError, KeyError, ValueError) as exc:
            log.info("no planner estimate for a queued job: %s", exc)
            return None, False
    total = 0.0
    for stage, seconds in measured.items():
        total += seconds if seconds else planned.get(stage, 0.0)
    return total, all(measured.get(stage) for stage in MODEL_STAGES)


def queue_eta(jobs: Sequence[QueuedJob], estimate: Callable[[dict[str, Any]], Estimate]) -> QueueEta:
    """ETAs for ``jobs`` in the order they will run (the running job first), with ``estimate(spec)`` per job."""
    found: dict[str, JobEta] = {}
    clock: float | None = 0.0
    all_calibrated = True
    for job in jobs:
        seconds, calibrated = estimate(job.spec)
        if job.state == RUNNING:
            if job.eta_seconds is not None:
                seconds = job.eta_seconds
            elif seconds is not None:
                seconds *= max(0.0, 1.0 - min(1.0, job.fraction))
        all_calibrated = all_calibrated and calibrated
        starts = clock
        clock = None if clock is None or seconds is None else clock + max(0.0, seconds)
        found[job.id] = JobEta(job.id, seconds, starts, clock, calibrated)
    return QueueEta(found, clock, all_calibrated)


def spec_estimator(calibration: "Calibration", hardware: "HardwareProfile") -> Callable[[dict[str, Any]], Estimate]:
    """``estimate(spec dict)`` for ``queue_eta``: a stored spec that cannot be read fails at once (0 s)."""
    def estimate(spec: dict[str, Any]) -> Estimate:
        try:
            parsed = JobSpec.from_dict(spec)
        except (StudioError, TypeError, ValueError):
            return 0.0, True
        return job_seconds(parsed, calibration, hardware)

    return estimate


def estimate_queue(gen: "VideoGenerator") -> QueueEta:
    """The ETAs of ``gen``'s running and waiting jobs, from its calibration and hardware."""
    return queue_eta(gen.queue(), spec_estimator(gen.calibration, gen.hardware))

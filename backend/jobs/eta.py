"""Overall progress and ETA from per-stage progress, calibrated by earlier jobs on this machine."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backend.record import STAGE_NAMES, JobRecord
from backend.work import measured_units, planned_units, stage_model

if TYPE_CHECKING:  # pragma: no cover
    from backend.jobs.store import JobStore
    from backend.spec import JobSpec

ETA_SMOOTHING = 0.3  # weight of a fresh estimate against the previous one (counted down by the time since)
# Share of a job's time each stage takes when nothing has been measured yet on this machine.
DEFAULT_WEIGHTS: dict[str, float] = {"analyze": 0.01, "keyframes": 0.30, "motion": 0.55, "assemble": 0.02,
                                     "finish": 0.12}


@dataclass
class EtaEstimator:
    """``estimates`` holds seconds per stage where an earlier job measured them (else None)."""

    stages: tuple[str, ...]
    estimates: dict[str, float | None] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _stage_started: float = field(default_factory=time.monotonic)
    _current: str | None = None
    _done: set[str] = field(default_factory=set)
    _stage_best: float = 0.0  # a stage's own fraction never goes back (a chunk's steps restart at 0)
    _overall: float = 0.0  # and neither does the whole job's
    _eta: tuple[float, float] | None = None  # (seconds remaining, when) of the last estimate, for smoothing

    def __post_init__(self) -> None:
        known = {s: v for s, v in self.estimates.items() if v}
        if len(known) == len(self.stages):
            total = sum(known.values())
            self.weights = {s: known[s] / total for s in self.stages}
        else:
            raw = {s: DEFAULT_WEIGHTS.get(s, 0.05) for s in self.stages}
            total = sum(raw.values())
            self.weights = {s: v / total for s, v in raw.items()}

    def begin(self, stage: str) -> None:
        if self._current is not None:
            self._done.add(self._current)
        self._current = stage
        self._stage_started = time.monotonic()
        self._stage_best = 0.0

    def update(self, stage_fraction: float) -> tuple[float, float | None]:
        """Overall fraction 0..1, never going back, and smoothed seconds remaining (None until known)."""
        self._stage_best = stage_fraction = max(self._stage_best, stage_fraction)
        overall, remaining = self._raw(stage_fraction)
        self._overall = overall = max(self._overall, overall)
        return overall, self._smooth(remaining)

    def _smooth(self, remaining: float | None) -> float | None:
        """Blend a fresh estimate with the last one counted down, so the ETA does not jump at each report."""
        now = time.monotonic()
        if remaining is None:
            return None if self._eta is None else max(0.0, self._eta[0] - (now - self._eta[1]))
        if self._eta is not None:
            previous = max(0.0, self._eta[0] - (now - self._eta[1]))
            remaining = ETA_SMOOTHING * remaining + (1 - ETA_SMOOTHING) * previous
        self._eta = (remaining, now)
        return remaining

    def _raw(self, stage_fraction: float) -> tuple[float, float | None]:
        now = time.monotonic()
        done_weight = sum(self.weights[s] for s in self._done)
        current = self._current
        weight = self.weights.get(current, 0.0) if current else 0.0
        overall = min(1.0, done_weight + weight * stage_fraction)
        remaining_current = self._remaining_in_stage(current, stage_fraction, now)
        future = [s for s in self.stages if s not in self._done and s != current]
        elapsed = now - self.started
        remaining_future = 0.0
        for stage in future:
            estimate = self.estimates.get(stage)
            if estimate:
                remaining_future += estimate
            elif overall > 0.02:
                remaining_future += elapsed / overall * self.weights[stage]
            else:
                return overall, None
        if remaining_current is None:
            return overall, None
        return overall, max(0.0, remaining_current + remaining_future)

    def _remaining_in_stage(self, stage: str | None, fraction: float, now: float) -> float | None:
        if stage is None:
            return 0.0
        elapsed = now - self._stage_started
        if fraction >= 0.05:
            return elapsed * (1 - fraction) / fraction
        estimate = self.estimates.get(stage)
        return max(0.0, estimate - elapsed) if estimate else None


class Calibration:
    """Seconds per unit of work measured on this machine, per stage and model (``backend.work`` units)."""

    def __init__(self, store: "JobStore", gpu: str) -> None:
        self.store, self.gpu = store, gpu

    def key(self, spec: "JobSpec", stage: str) -> str:
        """Per stage and model (the Quick preset's SDXL-Turbo is not SDXL), on this GPU."""
        ref = stage_model(spec, stage)
        return f"{stage}:{ref.key if ref is not None else spec.model_set}:{self.gpu}"

    def estimates(self, spec: "JobSpec") -> dict[str, float | None]:
        """Expected seconds per stage from earlier jobs on this machine (None where unknown)."""
        estimates: dict[str, float | None] = {}
        for stage in STAGE_NAMES:
            per_unit = self.store.timing(self.key(spec, stage))
            estimates[stage] = per_unit * planned_units(spec, stage) if per_unit else None
        return estimates

    def learn(self, spec: "JobSpec", record: JobRecord) -> None:
        """Fold a finished job's stage seconds into the running averages."""
        units = measured_units(record)
        for stage, data in record.stages.items():
            if data.kept or data.resumed:
                continue  # part of the work was done by an earlier run: its seconds say nothing per unit
            count = units.get(stage, 1.0) or 1.0
            self.store.record_timing(self.key(spec, stage), data.seconds / count)

"""Queue tools in the store (pause/resume, reorder) and the queue's ETAs (pure, with a fake estimator)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.jobs.eta import Calibration
from backend.jobs.queue_eta import job_seconds, queue_eta, spec_estimator
from backend.jobs.queue_tools import is_paused, move, set_paused
from backend.jobs.store import JobStore
from backend.memory import HardwareProfile
from backend.spec import JobSpec

pytestmark = pytest.mark.unit

CPU = HardwareProfile(None, None, 0.0, 0.0, 16.0, 12.0, 2)


def _store(tmp_path: Path, *ids: str) -> JobStore:
    store = JobStore(tmp_path / "studio.db")
    store.add_all([(i, {"prompt": i}) for i in ids])
    return store


def _waiting(store: JobStore) -> list[str]:
    return [r.id for r in sorted(store.list(states=("queued",)), key=lambda r: r.seq)]


def test_pause_is_persisted_and_stops_claims(tmp_path: Path) -> None:
    store = _store(tmp_path, "a", "b")
    assert not is_paused(store)
    set_paused(store, True)
    assert is_paused(JobStore(store.path))  # survives a restart (a new store on the same file)
    assert store.claim_next() is None and store.get("a").state == "queued"
    set_paused(store, False)
    assert not is_paused(store) and store.claim_next().id == "a"


def test_move_reorders_waiting_jobs_only(tmp_path: Path) -> None:
    store = _store(tmp_path, "run", "a", "b", "c")
    assert store.claim_next().id == "run"
    running_seq = store.get("run").seq
    assert move(store, "c", -1) and _waiting(store) == ["a", "c", "b"]
    assert move(store, "c", -5) and _waiting(store) == ["c", "a", "b"]
    assert not move(store, "c", -1)  # already first
    assert move(store, "c", 1) and _waiting(store) == ["a", "c", "b"]
    assert not move(store, "run", 1) and not move(store, "nope", 1)
    assert store.get("run").seq == running_seq
    assert store.claim_next().id == "a" and store.claim_next().id == "c"  # the worker follows the new order


@dataclass
class _Job:
    id: str
    state: str
    spec: dict
    fraction: float = 0.0
    eta_seconds: float | None = None


def test_queue_eta_adds_up_from_the_running_job() -> None:
    seconds = {"a": 100.0, "b": 60.0, "c": 30.0}
    jobs = [_Job("a", "running", {"prompt": "a"}, fraction=0.25), _Job("b", "queued", {"prompt": "b"}),
            _Job("c", "queued", {"prompt": "c"})]
    eta = queue_eta(jobs, lambda spec: (seconds[spec["prompt"]], True))
    assert eta.get("a").seconds == 75.0 and eta.get("a").starts_in == 0.0  # what is left of the running job
    assert (eta.get("b").starts_in, eta.get("b").done_in) == (75.0, 135.0)
    assert (eta.get("c").starts_in, eta.get("c").done_in) == (135.0, 165.0)
    assert eta.total == 165.0 and eta.calibrated

    jobs[0].eta_seconds = 10.0  # the live ETA of the job this process runs wins over the estimate
    assert queue_eta(jobs, lambda spec: (seconds[spec["prompt"]], True)).total == 100.0


def test_queue_eta_unknown_and_uncalibrated() -> None:
    jobs = [_Job("a", "queued", {"prompt": "a"}), _Job("b", "queued", {"prompt": "b"})]
    eta = queue_eta(jobs, lambda spec: (None, False) if spec["prompt"] == "a" else (5.0, True))
    assert eta.get("a").starts_in == 0.0 and eta.get("a").done_in is None
    assert eta.get("b").starts_in is None and eta.total is None and not eta.calibrated
    assert queue_eta([], lambda spec: (1.0, True)).total == 0.0


def test_job_seconds_from_calibration_else_the_planner(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "studio.db")
    calibration = Calibration(store, "cpu")
    spec = JobSpec(prompt="waves", model_set="tiny", width=256, height=144, duration=2.0, fps=8).validate()
    planned, calibrated = job_seconds(spec, calibration, CPU)
    assert planned is not None and planned >= 0 and not calibrated
    for stage in ("keyframes", "motion", "finish"):
        store.record_timing(calibration.key(spec, stage), 1.0)  # one second per unit
    measured, calibrated = job_seconds(spec, calibration, CPU)
    assert calibrated and measured > planned
    assert spec_estimator(calibration, CPU)({"prompt": "x", "bogus": 1}) == (0.0, True)  # fails at once

"""Elapsed over a job's runs: a resumed job counts the time of its earlier runs, not the time it sat stopped.

The store keeps ``run_seconds`` (added by the database's migration code) as of the last progress write or
the end of a run; the next run's clock starts that much earlier, so ``JobStatus.elapsed`` is the running time.
The clock is a fake one, so the numbers are exact.
"""

from __future__ import annotations

import sqlite3
import time
import types

import pytest

from backend.jobs import database
from backend.jobs import status as status_module
from backend.jobs import store as store_module
from backend.jobs.orchestrator import VideoGenerator
from backend.jobs.store import JobStore
from backend.memory import HardwareProfile

pytestmark = pytest.mark.unit

CPU = HardwareProfile(None, None, 0.0, 0.0, 16.0, 12.0, 2)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def at(self, now: float) -> "Clock":
        self.now = now
        return self


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(1000.0)
    module = types.SimpleNamespace(time=lambda: fake.now, strftime=time.strftime, monotonic=time.monotonic)
    monkeypatch.setattr(store_module, "time", module)
    monkeypatch.setattr(status_module, "time", module)
    return fake


def test_a_resumed_job_counts_its_earlier_runs_not_the_time_it_sat_stopped(studio_home, clock: Clock) -> None:
    gen = VideoGenerator(studio_home, hardware=CPU, start_worker=False)
    store = gen.store
    store.add("job", {"prompt": "a red fox"})
    store.claim_next()  # t = 1000
    clock.at(1030)
    store.progress("job", "keyframes", 0.2, "keyframe 1/2")
    assert gen.status("job").elapsed == 30
    clock.at(1040)
    store.finish("job", "cancelled")
    assert gen.status("job").elapsed == 40

    clock.at(5000)  # an hour later: Resume
    assert store.requeue("job")
    clock.at(9000)  # it waited in the queue for a while
    store.claim_next()
    clock.at(9005)
    assert gen.status("job").elapsed == 45  # 40 s before, 5 s now (this said 5 s: "restarts at 1 s")
    clock.at(9010)
    store.progress("job", "motion", 0.5, "segment 1/2 done")

    clock.at(20_000)  # the studio was killed after that write; it starts again hours later
    assert JobStore(store.path).mark_interrupted() == ["job"]
    assert store.requeue("job")
    clock.at(30_000)
    store.claim_next()
    clock.at(30_002)
    assert gen.status("job").elapsed == 52  # 40 + 10 up to the last sign of life + 2, not the hours between
    clock.at(30_004)
    store.finish("job", "done")
    clock.at(40_000)
    assert gen.status("job").elapsed == 54  # a finished job's time stays put


def test_a_job_that_never_ran_before_starts_from_zero(studio_home, clock: Clock) -> None:
    store = JobStore(studio_home.database)
    store.add("new", {})
    store.progress("new", "analyze", 0.0, "")  # a write for a job not claimed (no start yet) changes nothing
    row = store.claim_next()
    assert row.started == 1000.0


def test_an_older_database_gains_the_run_clock_on_open(tmp_path, clock: Clock) -> None:
    path = tmp_path / "studio.db"
    with sqlite3.connect(path) as db:  # as the release before the column made it
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(database._SCHEMA + database._ADDED_SCHEMA)
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO jobs (id, seq, state, spec, created, started, finished) VALUES"
                   " ('old', 1, 'cancelled', '{}', 100, 100, 160)")
    with sqlite3.connect(path) as db:
        assert not database.is_current(db)

    store = JobStore(path)
    with sqlite3.connect(path) as db:
        assert database.is_current(db)  # so the next open writes nothing
        assert db.execute("SELECT run_seconds FROM jobs WHERE id = 'old'").fetchone()[0] == 0
    assert store.get("old").finished - store.get("old").started == 60  # its history reads as before
    JobStore(path)  # a second open of a current database is fine
    assert store.requeue("old") and store.claim_next().started == 1000.0  # the older release kept no run time

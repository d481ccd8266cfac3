"""The job store keeps the queue and history across restarts and hands each job out once."""

from __future__ import annotations

import threading

from backend.jobs.store import CANCELLED, INTERRUPTED, QUEUED, RUNNING, JobStore


def test_jobs_survive_reopening_the_store(tmp_path):
    db = tmp_path / "studio.db"
    JobStore(db).add("a", {"prompt": "one"})
    JobStore(db).add("b", {"prompt": "two"})
    again = JobStore(db)
    assert [r.id for r in again.list()] == ["b", "a"]
    assert again.get("a").spec == {"prompt": "one"} and again.get("a").state == QUEUED


def test_claim_next_is_fifo_and_exactly_once_across_threads(tmp_path):
    store = JobStore(tmp_path / "studio.db")
    for i in range(20):
        store.add(f"job{i:02d}", {"i": i})
    claimed: list[str] = []
    lock = threading.Lock()

    def worker():
        while (row := store.claim_next()) is not None:
            with lock:
                claimed.append(row.id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == [f"job{i:02d}" for i in range(20)]  # each exactly once
    assert all(r.state == RUNNING for r in store.list())


def test_running_jobs_become_interrupted_after_a_crash(tmp_path):
    store = JobStore(tmp_path / "studio.db")
    store.add("a", {})
    store.add("b", {})
    store.claim_next()
    assert JobStore(tmp_path / "studio.db").mark_interrupted() == ["a"]
    assert store.get("a").state == INTERRUPTED and store.get("b").state == QUEUED


def test_cancel_queued_is_immediate_and_running_is_flagged(tmp_path):
    store = JobStore(tmp_path / "studio.db")
    store.add("a", {})
    store.add("b", {})
    store.claim_next()
    assert store.request_cancel("b") == CANCELLED
    assert store.request_cancel("a") == RUNNING
    assert store.progress("a", "motion", 0.5, "working") is True  # the worker learns of the cancel
    assert store.request_cancel("missing") is None


def test_requeue_puts_a_finished_job_at_the_back(tmp_path):
    store = JobStore(tmp_path / "studio.db")
    store.add("a", {})
    store.add("b", {})
    store.claim_next()
    store.finish("a", "failed", error="boom")
    assert store.requeue("a")
    assert store.claim_next().id == "b"
    assert store.claim_next().id == "a"
    assert not store.requeue("a")  # running jobs are not re-queued


def test_timing_calibration_is_a_running_average(tmp_path):
    store = JobStore(tmp_path / "studio.db")
    assert store.timing("k") is None
    store.record_timing("k", 2.0)
    store.record_timing("k", 4.0)
    assert store.timing("k") == 3.0

"""Queue tools over the job store: pause and resume (a persisted flag), and the order of waiting jobs.

The pause is a row in ``queue_flags`` that ``JobStore.claim_next`` reads in its own transaction, so a
paused queue hands out no job to any worker (this process's or another's) and the worker loop needs no
change: the running job finishes, nothing new starts. Waiting jobs run in ``seq`` order; moving one
swaps the ``seq`` values among the waiting jobs only, so running and finished jobs keep theirs.

A database from before these tables existed, opened read-only, reads as "not paused".
"""

from __future__ import annotations

import sqlite3
from typing import Callable, TypeVar

from backend.jobs.database import PAUSED_FLAG
from backend.jobs.store import QUEUED, JobStore

T = TypeVar("T")


def optional_read(store: JobStore, query: Callable[[sqlite3.Connection], T], default: T) -> T:
    """Run a read of a table added after schema 1; ``default`` where the table is missing (old, read-only)."""
    try:
        return store._read(query)  # noqa: SLF001 - the store's own read path (same package)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return default
        raise


def is_paused(store: JobStore) -> bool:
    """Whether the queue is paused (no job starts until it is resumed)."""
    row = optional_read(store, lambda db: db.execute("SELECT value FROM queue_flags WHERE key = ?",
                                                      (PAUSED_FLAG,)).fetchone(), None)
    return bool(row) and row[0] == "1"


def set_paused(store: JobStore, paused: bool) -> None:
    """Pause (the running job finishes, no new one starts) or resume the queue; kept across restarts."""
    with store._connect() as db:  # noqa: SLF001 - the store's own write path (same package)
        db.execute("INSERT INTO queue_flags (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
                   " value = excluded.value", (PAUSED_FLAG, "1" if paused else "0"))


def move(store: JobStore, job_id: str, offset: int) -> bool:
    """Move a waiting job ``offset`` places (negative: earlier) among the waiting jobs.

    Returns False when the job is not waiting or is already at that end of the queue.
    """
    with store._connect() as db:  # noqa: SLF001 - the store's own write path (same package)
        db.execute("BEGIN IMMEDIATE")
        rows = db.execute("SELECT id, seq FROM jobs WHERE state = ? ORDER BY seq", (QUEUED,)).fetchall()
        ids = [r["id"] for r in rows]
        if job_id not in ids:
            db.execute("COMMIT")
            return False
        here = ids.index(job_id)
        there = max(0, min(len(ids) - 1, here + offset))
        if there == here:
            db.execute("COMMIT")
            return False
        ids.insert(there, ids.pop(here))
        seqs = sorted(r["seq"] for r in rows)
        db.executemany("UPDATE jobs SET seq = ? WHERE id = ?", list(zip(seqs, ids)))
        db.execute("COMMIT")
    return True

"""Favourite videos: a job id per row in the store's ``favourites`` table (gone with the job)."""

from __future__ import annotations

import time

from backend.jobs.queue_tools import optional_read
from backend.jobs.store import JobStore


def favourite_ids(store: JobStore) -> set[str]:
    """The ids of the jobs marked as favourites."""
    rows = optional_read(store, lambda db: db.execute("SELECT job_id FROM favourites").fetchall(), [])
    return {r[0] for r in rows}


def set_favourite(store: JobStore, job_id: str, favourite: bool) -> bool:
    """Mark or unmark a job; returns False for a job that does not exist."""
    with store._connect() as db:  # noqa: SLF001 - the store's own write path (same package)
        if not favourite:
            db.execute("DELETE FROM favourites WHERE job_id = ?", (job_id,))
            return True
        if db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
            return False
        db.execute("INSERT OR IGNORE INTO favourites (job_id, added) VALUES (?, ?)", (job_id, time.time()))
    return True

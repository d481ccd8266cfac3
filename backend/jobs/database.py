"""The SQLite file under the job store: its schema, connections in WAL mode, and what to do when damaged."""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

WAL_SWITCH_RETRIES_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,              -- FIFO order
    state TEXT NOT NULL,
    spec TEXT NOT NULL,                -- JobSpec as JSON
    record TEXT NOT NULL DEFAULT '{}', -- the reproducibility record built while running
    stage TEXT NOT NULL DEFAULT '',
    fraction REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    error TEXT,
    output TEXT,
    sidecar TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_state_seq ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS stages (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    state TEXT NOT NULL,               -- running | done
    seconds REAL,
    checkpoint TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (job_id, name)
);
CREATE TABLE IF NOT EXISTS timings (   -- measured seconds per unit of work, for ETAs
    key TEXT PRIMARY KEY,
    seconds_per_unit REAL NOT NULL,
    samples INTEGER NOT NULL,
    updated REAL NOT NULL
);
"""


def create_schema(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A short-lived connection per operation: safe across threads, cheap with WAL."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        _use_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=30000")
        db.row_factory = sqlite3.Row
        yield db
    finally:
        db.close()


def _use_wal(db: sqlite3.Connection) -> None:
    """Switch to WAL, retrying while another process does the same to a new file.

    The switch needs an exclusive lock; two processes opening a fresh database at once can each hold
    the shared lock the other waits on, and SQLite answers "locked" at once rather than deadlock
    (its busy handler is not used there). Once the file is in WAL mode the pragma is a no-op.
    """
    for pause in WAL_SWITCH_RETRIES_S:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(pause)
    db.execute("PRAGMA journal_mode=WAL")


def move_aside(path: Path, exc: Exception) -> Path:
    """Keep a damaged database for inspection and start an empty one (the studio must start)."""
    target = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.replace(Path(f"{target}{suffix}"))
    log.error("the job database %s could not be read (%s); moved it to %s and started an empty one",
              path, exc, target)
    return target

"""The job store: SQLite in WAL mode, so the queue and history survive restarts and crashes.

Several processes may open the same store (a second studio window, the CLI): SQLite serialises
writes, and ``claim_next`` hands each queued job to exactly one worker. Every write is one
transaction, so a process killed mid-write leaves either the old or the new row, never half of
one (WAL + ``synchronous=NORMAL`` is durable against a crashed process; a power cut may lose the
last commits, never consistency). A stage checkpoint and the job record it belongs to are written
in the same transaction (``checkpoint``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted",
)
FINISHED_STATES = (DONE, FAILED, CANCELLED, INTERRUPTED)

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


@dataclass(frozen=True)
class JobRow:
    id: str
    seq: int
    state: str
    spec: dict[str, Any]
    record: dict[str, Any]
    stage: str
    fraction: float
    message: str
    error: str | None
    output: str | None
    sidecar: str | None
    cancel_requested: bool
    created: float
    started: float | None
    finished: float | None


class JobStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.recovered_from: Path | None = None  # where an unreadable database was moved aside
        try:
            self._create()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise  # locked or disk full: the file may be fine, never move it aside for that
            self.recovered_from = self._move_aside(exc)
            self._create()

    def _create(self) -> None:
        with self._connect() as db:
            # quick_check finds damaged pages now, not as an error on every later query (ms on a small file).
            damage = [r[0] for r in db.execute("PRAGMA quick_check").fetchall() if r[0] != "ok"]
            if damage:
                raise sqlite3.DatabaseError(f"the database is damaged: {'; '.join(damage[:3])}")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _move_aside(self, exc: Exception) -> Path:
        """Keep a damaged database for inspection and start an empty one (the studio must start)."""
        target = self.path.with_name(f"{self.path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                source.replace(Path(f"{target}{suffix}"))
        log.error("the job database %s could not be read (%s); moved it to %s and started an empty one",
                  self.path, exc, target)
        return target

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A short-lived connection per operation: safe across threads, cheap with WAL.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    # --- jobs -----------------------------------------------------------------------
    def add(self, job_id: str, spec: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            db.execute(
                "INSERT INTO jobs (id, seq, state, spec, created) VALUES (?, ?, ?, ?, ?)",
                (job_id, seq, QUEUED, json.dumps(spec), time.time()),
            )
            db.execute("COMMIT")

    def claim_next(self) -> JobRow | None:
        """Atomically move the oldest queued job to running and return it."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT id FROM jobs WHERE state = ? ORDER BY seq LIMIT 1", (QUEUED,)
            ).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute(
                "UPDATE jobs SET state = ?, started = ?, fraction = 0, error = NULL, message = '' WHERE id = ?",
                (RUNNING, time.time(), row["id"]),
            )
            db.execute("COMMIT")
        return self.get(row["id"])

    def get(self, job_id: str) -> JobRow | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _to_row(row) if row else None

    def list(self, *, states: tuple[str, ...] | None = None, limit: int = 200) -> list[JobRow]:
        query = "SELECT * FROM jobs"
        args: list[Any] = []
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
            args.extend(states)
        query += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        with self._connect() as db:
            return [_to_row(r) for r in db.execute(query, args).fetchall()]

    def progress(self, job_id: str, stage: str, fraction: float, message: str) -> bool:
        """Store progress; returns whether a cancel was requested (so the worker can react)."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET stage = ?, fraction = ?, message = ? WHERE id = ?",
                (stage, fraction, message, job_id),
            )
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def update_record(self, job_id: str, record: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET record = ? WHERE id = ?", (json.dumps(record, default=str), job_id))

    def finish(
        self, job_id: str, state: str, *, error: str | None = None, output: str | None = None,
        sidecar: str | None = None, record: dict[str, Any] | None = None, stage: str | None = None,
        message: str | None = None,
    ) -> None:
        """End a job; ``stage``/``message`` are the last progress seen (progress writes are throttled)."""
        if state not in FINISHED_STATES:
            raise ValueError(f"{state!r} is not a finished state")
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, output = COALESCE(?, output), sidecar = COALESCE(?, sidecar),"
                " record = COALESCE(?, record), finished = ?, fraction = CASE WHEN ? = 'done' THEN 1 ELSE fraction END,"
                " stage = COALESCE(?, stage), message = COALESCE(?, message)"
                " WHERE id = ?",
                (state, error, output, sidecar, json.dumps(record, default=str) if record is not None else None,
                 time.time(), state, stage, message, job_id),
            )

    def request_cancel(self, job_id: str) -> str | None:
        """Cancel: a queued job is cancelled at once; a running one is flagged for its worker.

        Returns the job's state after the call, or None if there is no such job.
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            state = row["state"]
            if state == QUEUED:
                db.execute("UPDATE jobs SET state = ?, finished = ?, message = 'cancelled before it started'"
                           " WHERE id = ?", (CANCELLED, time.time(), job_id))
                state = CANCELLED
            elif state == RUNNING:
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            db.execute("COMMIT")
        return state

    def requeue(self, job_id: str) -> bool:
        """Put a failed, cancelled or interrupted job back at the end of the queue."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            changed = db.execute(
                "UPDATE jobs SET state = ?, seq = ?, cancel_requested = 0, error = NULL, finished = NULL,"
                " fraction = 0, message = 'queued again' WHERE id = ? AND state IN (?, ?, ?)",
                (QUEUED, seq, job_id, FAILED, CANCELLED, INTERRUPTED),
            ).rowcount
            db.execute("COMMIT")
        return changed == 1

    def delete(self, job_id: str) -> bool:
        with self._connect() as db:
            return db.execute("DELETE FROM jobs WHERE id = ? AND state != ?", (job_id, RUNNING)).rowcount == 1

    def prune_history(self, keep: int) -> list[str]:
        """Delete all but the ``keep`` newest finished jobs (queued and running ones are never touched).

        Returns the ids removed, so the caller can delete what belonged to them (previews).
        """
        if keep < 0:
            raise ValueError("keep must be 0 or more")
        marks = ",".join("?" * len(FINISHED_STATES))
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            ids = [r[0] for r in db.execute(
                f"SELECT id FROM jobs WHERE state IN ({marks}) ORDER BY seq DESC LIMIT -1 OFFSET ?",
                (*FINISHED_STATES, keep),
            ).fetchall()]
            db.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in ids])
            db.execute("COMMIT")
        return ids

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])

    def integrity_problems(self) -> list[str]:
        """SQLite's own consistency check plus JSON columns that do not parse; [] when all is well."""
        with self._connect() as db:
            problems = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall() if r[0] != "ok"]
            for row in db.execute("SELECT id, spec, record FROM jobs").fetchall():
                problems += _bad_json(f"job {row['id']}", row["spec"], row["record"])
            for row in db.execute("SELECT job_id, name, checkpoint FROM stages").fetchall():
                problems += _bad_json(f"stage {row['job_id']}/{row['name']}", row["checkpoint"])
        return problems

    def mark_interrupted(self) -> list[str]:
        """Jobs left 'running' by a crashed or killed process become 'interrupted'."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE state = ?", (RUNNING,)).fetchall()]
            db.execute(
                "UPDATE jobs SET state = ?, finished = ?, message = 'the studio stopped while this job ran'"
                " WHERE state = ?", (INTERRUPTED, time.time(), RUNNING),
            )
            db.execute("COMMIT")
        return ids

    # --- stage checkpoints --------------------------------------------------------------
    def stage_done(self, job_id: str, name: str, seconds: float, checkpoint: dict[str, Any]) -> None:
        with self._connect() as db:
            _upsert_stage(db, job_id, name, seconds, checkpoint)

    def checkpoint(self, job_id: str, name: str, seconds: float, checkpoint: dict[str, Any],
                   record: dict[str, Any]) -> None:
        """Mark a stage done and store the job record in one transaction (never one without the other)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            _upsert_stage(db, job_id, name, seconds, checkpoint)
            db.execute("UPDATE jobs SET record = ? WHERE id = ?", (json.dumps(record, default=str), job_id))
            db.execute("COMMIT")

    def stages(self, job_id: str) -> dict[str, dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM stages WHERE job_id = ?", (job_id,)).fetchall()
        return {r["name"]: {"state": r["state"], "seconds": r["seconds"], "checkpoint": json.loads(r["checkpoint"])}
                for r in rows}

    def clear_stages(self, job_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM stages WHERE job_id = ?", (job_id,))

    # --- timing calibration ---------------------------------------------------------------
    def record_timing(self, key: str, seconds_per_unit: float) -> None:
        """Keep a running average of how long one unit of work takes on this machine."""
        with self._connect() as db:
            db.execute(
                "INSERT INTO timings (key, seconds_per_unit, samples, updated) VALUES (?, ?, 1, ?)"
                " ON CONFLICT(key) DO UPDATE SET"
                " seconds_per_unit = (seconds_per_unit * MIN(samples, 9) + excluded.seconds_per_unit)"
                " / (MIN(samples, 9) + 1), samples = samples + 1, updated = excluded.updated",
                (key, seconds_per_unit, time.time()),
            )

    def timing(self, key: str) -> float | None:
        with self._connect() as db:
            row = db.execute("SELECT seconds_per_unit FROM timings WHERE key = ?", (key,)).fetchone()
        return float(row[0]) if row else None


def _upsert_stage(db: sqlite3.Connection, job_id: str, name: str, seconds: float,
                  checkpoint: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO stages (job_id, name, state, seconds, checkpoint) VALUES (?, ?, 'done', ?, ?)"
        " ON CONFLICT(job_id, name) DO UPDATE SET state='done', seconds=excluded.seconds,"
        " checkpoint=excluded.checkpoint",
        (job_id, name, seconds, json.dumps(checkpoint, default=str)),
    )


def _bad_json(where: str, *texts: str) -> list[str]:
    problems = []
    for text in texts:
        try:
            json.loads(text)
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: unreadable JSON ({exc})")
    return problems


def _to_row(row: sqlite3.Row) -> JobRow:
    return JobRow(
        id=row["id"], seq=row["seq"], state=row["state"], spec=json.loads(row["spec"]),
        record=json.loads(row["record"] or "{}"), stage=row["stage"], fraction=row["fraction"],
        message=row["message"], error=row["error"], output=row["output"], sidecar=row["sidecar"],
        cancel_requested=bool(row["cancel_requested"]), created=row["created"], started=row["started"],
        finished=row["finished"],
    )

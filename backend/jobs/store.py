"""The job store: SQLite in WAL mode, so the queue and history survive restarts and crashes.

Several processes may open the same store (a second studio window, the CLI): SQLite serialises
writes, and ``claim_next`` hands each queued job to exactly one worker. Every write is one
transaction, so a process killed mid-write leaves either the old or the new row, never half of
one (WAL + ``synchronous=NORMAL`` is durable against a crashed process; a power cut may lose the
last commits, never consistency). A stage checkpoint and the job record it belongs to are written
in the same transaction (``checkpoint``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.jobs.database import connect, create_schema, move_aside
from backend.record import JobRecord, StageRecord, stage_record_from_dict
from backend.spec import upgrade_spec_dict

log = logging.getLogger(__name__)

CHECKPOINT_ARTIFACTS = "artifacts"

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted",
)
FINISHED_STATES = (DONE, FAILED, CANCELLED, INTERRUPTED)


@dataclass(frozen=True)
class JobRow:
    id: str
    seq: int
    state: str
    spec: dict[str, Any]  # JobSpec.to_dict() as submitted (specs of earlier releases upgraded on read)
    record: JobRecord | None  # None until the job's first stage is checkpointed
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


@dataclass(frozen=True)
class StageCheckpoint:
    """A finished stage of one run: its record and the size of each artifact it left in the work folder."""

    stage: str
    state: str  # "done"
    seconds: float | None
    record: StageRecord
    artifacts: dict[str, int]  # path relative to the work folder -> size in bytes


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
            self.recovered_from = move_aside(self.path, exc)
            self._create()

    def _create(self) -> None:
        with self._connect() as db:
            # quick_check finds damaged pages now, not as an error on every later query (ms on a small file).
            damage = [r[0] for r in db.execute("PRAGMA quick_check").fetchall() if r[0] != "ok"]
            if damage:
                raise sqlite3.DatabaseError(f"the database is damaged: {'; '.join(damage[:3])}")
            create_schema(db)

    def _connect(self) -> "contextlib.AbstractContextManager[sqlite3.Connection]":
        return connect(self.path)

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

    def update_record(self, job_id: str, record: JobRecord) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET record = ? WHERE id = ?", (_record_json(record), job_id))

    def finish(
        self, job_id: str, state: str, *, error: str | None = None, output: str | None = None,
        sidecar: str | None = None, record: JobRecord | None = None, stage: str | None = None,
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
                (state, error, output, sidecar, _record_json(record) if record is not None else None,
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
    def checkpoint(self, job_id: str, stage: str, record: StageRecord, artifacts: dict[str, int],
                   job_record: JobRecord) -> None:
        """Mark a stage done and store the job record in one transaction (never one without the other)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            _upsert_stage(db, job_id, stage, record, artifacts)
            db.execute("UPDATE jobs SET record = ? WHERE id = ?", (_record_json(job_record), job_id))
            db.execute("COMMIT")

    def stages(self, job_id: str) -> dict[str, StageCheckpoint]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM stages WHERE job_id = ?", (job_id,)).fetchall()
        return {r["name"]: _to_checkpoint(r) for r in rows}

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


def _upsert_stage(db: sqlite3.Connection, job_id: str, name: str, record: StageRecord,
                  artifacts: dict[str, int]) -> None:
    # Stored flat (the stage record's keys plus "artifacts"), as every release has stored it.
    checkpoint = {**record.to_dict(), CHECKPOINT_ARTIFACTS: artifacts}
    db.execute(
        "INSERT INTO stages (job_id, name, state, seconds, checkpoint) VALUES (?, ?, 'done', ?, ?)"
        " ON CONFLICT(job_id, name) DO UPDATE SET state='done', seconds=excluded.seconds,"
        " checkpoint=excluded.checkpoint",
        (job_id, name, record.seconds, json.dumps(checkpoint, default=str)),
    )


def _to_checkpoint(row: sqlite3.Row) -> StageCheckpoint:
    stored = json.loads(row["checkpoint"] or "{}")
    artifacts = stored.pop(CHECKPOINT_ARTIFACTS, None) if isinstance(stored, dict) else None
    return StageCheckpoint(row["name"], row["state"], row["seconds"], stage_record_from_dict(row["name"], stored),
                           artifacts if isinstance(artifacts, dict) else {})


def _record_json(record: JobRecord) -> str:
    return json.dumps(record.to_dict(), default=str)


def _record_from_json(text: str | None) -> JobRecord | None:
    data = json.loads(text or "{}")
    if not data:
        return None
    try:
        return JobRecord.from_dict(data)
    except (TypeError, ValueError, KeyError) as exc:  # a row of the wrong shape must not break the history
        log.warning("a stored job record could not be read (%s); showing the job without it", exc)
        return None


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
        id=row["id"], seq=row["seq"], state=row["state"], spec=upgrade_spec_dict(json.loads(row["spec"])),
        record=_record_from_json(row["record"]), stage=row["stage"], fraction=row["fraction"],
        message=row["message"], error=row["error"], output=row["output"], sidecar=row["sidecar"],
        cancel_requested=bool(row["cancel_requested"]), created=row["created"], started=row["started"],
        finished=row["finished"],
    )

"""The job store: SQLite in WAL mode, so the queue and history survive restarts and crashes.

Several processes may open the same store (a second studio window, the CLI): SQLite serialises
writes, and ``claim_next`` hands each queued job to exactly one worker. Every write is one
transaction, so a process killed mid-write leaves either the old or the new row, never half of
one (WAL + ``synchronous=NORMAL`` is durable against a crashed process; a power cut may lose the
last commits, never consistency). A stage checkpoint and the job record it belongs to are written
in the same transaction (``checkpoint``).

Opening a database that is set up writes nothing. One that cannot be written (read-only file, folder
or disk) is opened read-only: the history reads, and every write raises ``StoreReadOnly``. A write on a
full disk raises ``StoreFull`` (a ``DiskFull``); reads then still work. Rows are decoded in ``rows.py``,
which never fails on a bad row.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from backend.jobs.database import (
    PAUSED_FLAG,
    SCHEMA_VERSION,
    StoreFull,
    StoreReadOnly,
    connect,
    is_current,
    move_aside,
    set_up,
    unwritable,
)
from backend.jobs.rows import CHECKPOINT_ARTIFACTS, JobRow, StageCheckpoint, readable, to_checkpoint, to_row
from backend.record import JobRecord, StageRecord

log = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_ARTIFACTS", "JobRow", "JobStore", "StageCheckpoint", "StoreFull", "StoreReadOnly"]
WORKER_LOCK = "worker.lock"  # beside the database; the worker holds an flock on it (see the orchestrator)
T = TypeVar("T")

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted",
)
FINISHED_STATES = (DONE, FAILED, CANCELLED, INTERRUPTED)
# Keyframes made, waiting for the user to review the storyboard: not finished (history pruning keeps it, its
# work folder is kept) and not active (no worker holds it); Animate or a keyframe edit queues it again.
AWAITING_REVIEW = "awaiting_review"
ALREADY = "already "  # request_cancel's answer for a job that had ended: "already cancelled", "already done"...


class JobStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.recovered_from: Path | None = None  # where an unreadable database was moved aside
        self.read_only: str | None = None  # why the database cannot be written (it is then opened read-only)
        self._immutable = False  # read without the WAL index (a read-only folder has none to offer)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreReadOnly(self.path, f"its folder cannot be created ({exc.strerror or exc})") from exc
        self.read_only = unwritable(self.path)
        if self.read_only:
            self._open_read_only()
            return
        try:
            self._open()
        except StoreReadOnly as exc:  # SQLite found it read-only where the permissions did not say so
            self.read_only = exc.reason
            self._open_read_only()
        except StoreFull:
            self._open_full()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise  # locked: the file may be fine, never move it aside for that
            self.recovered_from = move_aside(self.path, exc)
            self._open()

    def _open(self) -> None:
        with connect(self.path) as db:
            _check_damage(db)
            if not is_current(db):  # a new or older database: the only open that writes
                set_up(db)

    def _open_read_only(self) -> None:
        last: Exception | None = None
        for immutable in (False, True):  # mode=ro needs the WAL index; without one, read the file as it is
            try:
                with connect(self.path, read_only=True, immutable=immutable) as db:
                    _check_damage(db)
                    version = db.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.OperationalError as exc:
                last = exc
                continue
            except sqlite3.DatabaseError as exc:
                raise StoreReadOnly(self.path, f"{self.read_only}, and it is damaged ({exc})") from exc
            if version < SCHEMA_VERSION:
                raise StoreReadOnly(self.path, f"{self.read_only}, and it was never set up")
            self._immutable = immutable
            log.info("the job database %s is read-only (%s): the history can be read, nothing can be queued",
                     self.path, self.read_only)
            return
        raise StoreReadOnly(self.path, f"{self.read_only}, and it cannot be read either ({last})") from last

    def _open_full(self) -> None:
        """The disk is full: a database that is set up can still be read (writes raise ``StoreFull``)."""
        with connect(self.path, read_only=True, immutable=True) as db:
            _check_damage(db)
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                raise StoreFull(f"the job database {self.path} cannot be set up")
        log.info("the disk holding the job database %s is full: the history can be read, nothing written",
                 self.path)

    def _connect(self) -> "contextlib.AbstractContextManager[sqlite3.Connection]":
        """A connection for a write (a read-only store refuses it at once)."""
        if self.read_only:
            raise StoreReadOnly(self.path, self.read_only)
        return connect(self.path)

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``query``; on a full disk (no room for the WAL index) read the file as it is."""
        try:
            with connect(self.path, read_only=bool(self.read_only), immutable=self._immutable) as db:
                return query(db)
        except StoreFull:
            with connect(self.path, read_only=True, immutable=True) as db:
                return query(db)

    def worker_active(self) -> bool:
        """Whether a studio process holds the worker lock, i.e. a ``running`` job is really running.

        Tries the lock without waiting and lets go at once; never creates the lock file (read-only folders).
        """
        try:
            handle = open(self.path.parent / WORKER_LOCK, "rb")
        except OSError:
            return False  # no worker ever ran here (or none can): nothing is running
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False

    # --- jobs -----------------------------------------------------------------------
    def add(self, job_id: str, spec: dict[str, Any]) -> None:
        self.add_all([(job_id, spec)])

    def add_all(self, jobs: list[tuple[str, dict[str, Any]]]) -> None:
        """Queue jobs in one transaction, in order: all of them, or (interrupted, failed) none."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()[0]
            now = time.time()
            db.executemany(
                "INSERT INTO jobs (id, seq, state, spec, created) VALUES (?, ?, ?, ?, ?)",
                [(job_id, seq + i, QUEUED, json.dumps(spec), now) for i, (job_id, spec) in enumerate(jobs, 1)],
            )
            db.execute("COMMIT")

    def claim_next(self) -> JobRow | None:
        """Atomically move the first queued job to running and return it (none while the queue is paused)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT id FROM jobs WHERE state = ? AND NOT EXISTS (SELECT 1 FROM queue_flags WHERE"
                             " key = ? AND value = '1') ORDER BY seq LIMIT 1", (QUEUED, PAUSED_FLAG)).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute("UPDATE jobs SET state = ?, started = ? - run_seconds, fraction = 0, error = NULL, message = ''"
                       " WHERE id = ?", (RUNNING, time.time(), row["id"]))  # earlier runs count (ADDED_COLUMNS)
            db.execute("COMMIT")
        return self.get(row["id"])

    def get(self, job_id: str) -> JobRow | None:
        row = self._read(lambda db: db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
        return to_row(row) if row else None

    def list(self, *, states: tuple[str, ...] | None = None, limit: int = 200) -> list[JobRow]:
        query = "SELECT * FROM jobs"
        args: list[Any] = []
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
            args.extend(states)
        query += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        return [to_row(r) for r in self._read(lambda db: db.execute(query, args).fetchall())]

    def progress(self, job_id: str, stage: str, fraction: float, message: str) -> bool:
        """Store progress; returns whether a cancel was requested (so the worker can react)."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET stage = ?, fraction = ?, message = ?, run_seconds = COALESCE(? - started, run_seconds)"
                " WHERE id = ?", (readable(stage), fraction, readable(message), time.time(), job_id),
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
        now = time.time()
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, output = COALESCE(?, output), sidecar = COALESCE(?, sidecar),"
                " record = COALESCE(?, record), finished = ?, fraction = CASE WHEN ? = 'done' THEN 1 ELSE fraction END,"
                " stage = COALESCE(?, stage), message = COALESCE(?, message), run_seconds = CASE WHEN state = 'running'"
                " THEN COALESCE(? - started, run_seconds) ELSE run_seconds END WHERE id = ?",
                (state, readable(error), readable(output), readable(sidecar),
                 _record_json(record) if record is not None else None, now, state, readable(stage),
                 readable(message), now, job_id),
            )

    def request_cancel(self, job_id: str) -> str | None:
        """Cancel: a queued job is cancelled at once; a running one is flagged for its worker.

        Returns CANCELLED (a queued job, cancelled now), RUNNING (flagged for its worker), ``"already <state>"``
        for a job that had ended before (nothing changes, and it reads as neither of those), or None if there
        is no such job.
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            state = row["state"]
            if state in (QUEUED, AWAITING_REVIEW):
                message = "cancelled before it started" if state == QUEUED else "storyboard discarded"
                db.execute("UPDATE jobs SET state = ?, finished = ?, message = ? WHERE id = ?",
                           (CANCELLED, time.time(), message, job_id))
                state = CANCELLED
            elif state == RUNNING:
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            else:
                state = f"{ALREADY}{state}"
            db.execute("COMMIT")
        return state

    def park_for_review(self, job_id: str, record: JobRecord, message: str) -> None:
        """End this run of a job at the review point: its storyboard waits for the user, no worker holds it."""
        now = time.time()  # its clock stops while it waits (``finished`` is cleared when it is queued again)
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET state = ?, record = ?, message = ?, stage = 'keyframes', cancel_requested = 0,"
                " finished = ?, run_seconds = COALESCE(? - started, run_seconds) WHERE id = ?",
                (AWAITING_REVIEW, _record_json(record), readable(message), now, now, job_id),
            )

    def requeue(self, job_id: str) -> bool:
        """Put a failed, cancelled, interrupted (or reviewed) job back at the end of the queue."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            changed = db.execute(
                "UPDATE jobs SET state = ?, seq = ?, cancel_requested = 0, error = NULL, finished = NULL,"
                " fraction = 0, message = 'queued again' WHERE id = ? AND state IN (?, ?, ?, ?)",
                (QUEUED, seq, job_id, FAILED, CANCELLED, INTERRUPTED, AWAITING_REVIEW),
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
        return int(self._read(lambda db: db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]))

    def integrity_problems(self) -> list[str]:
        """SQLite's own consistency check plus JSON columns that do not parse; [] when all is well."""
        return self._read(_integrity_problems)

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
        """The job's readable stage checkpoints (one that cannot be read is left out: that stage runs again)."""
        rows = self._read(lambda db: db.execute("SELECT * FROM stages WHERE job_id = ?", (job_id,)).fetchall())
        checkpoints = {r["name"]: to_checkpoint(r) for r in rows}
        return {name: checkpoint for name, checkpoint in checkpoints.items() if checkpoint is not None}

    def clear_stages(self, job_id: str, names: tuple[str, ...] | None = None) -> None:
        """Forget the job's checkpoints (all, or the named stages): those stages run again on the next run."""
        with self._connect() as db:
            if names is None:
                db.execute("DELETE FROM stages WHERE job_id = ?", (job_id,))
            else:
                marks = ",".join("?" * len(names))
                db.execute(f"DELETE FROM stages WHERE job_id = ? AND name IN ({marks})", (job_id, *names))

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
        row = self._read(lambda db: db.execute("SELECT seconds_per_unit FROM timings WHERE key = ?", (key,)).fetchone())
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


def _record_json(record: JobRecord) -> str:
    return json.dumps(record.to_dict(), default=str)


def _bad_json(where: str, *texts: str) -> list[str]:
    problems = []
    for text in texts:
        try:
            json.loads(text)
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: unreadable JSON ({exc})")
    return problems


def _check_damage(db: sqlite3.Connection) -> None:
    # quick_check finds damaged pages now, not as an error on every later query (ms on a small file).
    damage = [r[0] for r in db.execute("PRAGMA quick_check").fetchall() if r[0] != "ok"]
    if damage:
        raise sqlite3.DatabaseError(f"the database is damaged: {'; '.join(damage[:3])}")


def _integrity_problems(db: sqlite3.Connection) -> list[str]:
    problems = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall() if r[0] != "ok"]
    for row in db.execute("SELECT id, spec, record FROM jobs").fetchall():
        problems += _bad_json(f"job {row['id']}", row["spec"], row["record"])
    for row in db.execute("SELECT job_id, name, checkpoint FROM stages").fetchall():
        problems += _bad_json(f"stage {row['job_id']}/{row['name']}", row["checkpoint"])
    return problems

"""The SQLite file under the job store: its schema, connections in WAL mode, and what to do when damaged.

Opening a database that is already set up writes nothing (so the history reads on a full disk or from a
read-only folder); SQLite's own errors for a full disk and a read-only file become ``StoreFull`` and
``StoreReadOnly``, which are ``StudioError``s (one sentence for the user) and still
``sqlite3.OperationalError``s (so callers that retry a locked store keep working).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NoReturn

from backend.errors import DiskFull, StudioError

log = logging.getLogger(__name__)

WAL_SWITCH_RETRIES_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
NEARLY_FULL_BYTES = 64 * 2**20  # below this much free space, SQLite's "disk I/O error" means a full disk

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
# Tables added after schema version 1: a database without them is set up again on open (CREATE ... IF NOT
# EXISTS), so older databases gain them without a version bump; reads of them tolerate their absence (a
# read-only old database).
_ADDED_SCHEMA = """
CREATE TABLE IF NOT EXISTS job_groups (  -- variations queued together, shown side by side
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    group_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    label TEXT NOT NULL,               -- what differs, e.g. "seed 43"
    axis TEXT NOT NULL,                -- the setting varied: seed | guidance | motion_strength | engine | grade
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS job_groups_group ON job_groups(group_id, position);
CREATE TABLE IF NOT EXISTS queue_flags (  -- persisted queue settings, e.g. paused = '1'
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS favourites (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    added REAL NOT NULL
);
"""
ADDED_TABLES = ("job_groups", "queue_flags", "favourites")
# Columns added after schema version 1, the same way: a database without one is set up again on open (ALTER
# TABLE), and nothing reads them by name from a row (an old read-only database simply lacks them).
ADDED_COLUMNS = (
    # Seconds the job has run over all its runs, as of its last progress write or its end (so a crash loses at
    # most the time since the last write, and never counts the time it sat stopped); a new run starts its
    # clock that much earlier, so ``finished - started`` is the job's running time (``JobStatus.elapsed``).
    ("jobs", "run_seconds", "REAL NOT NULL DEFAULT 0"),
)
PAUSED_FLAG = "paused"  # queue_flags key: while its value is '1', claim_next hands out no job


class StoreReadOnly(StudioError, sqlite3.OperationalError):
    """The job database cannot be written (read-only file, folder or disk): the history can still be read."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"The job database {path} is read-only: {reason}. The history can be read, but no job "
                         "can be queued or changed until its folder is writable (or STUDIO_HOME points elsewhere).")
        self.path, self.reason = path, reason


class StoreFull(DiskFull, sqlite3.OperationalError):
    """A write to the job database failed because the disk (or the database's size limit) is full."""


def create_schema(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA + _ADDED_SCHEMA)
    for table, column, declaration in ADDED_COLUMNS:
        if column not in _columns(db, table):
            try:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            except sqlite3.OperationalError as exc:  # another process opening it added it just now
                if "duplicate column" not in str(exc):
                    raise
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})").fetchall()}


def is_current(db: sqlite3.Connection) -> bool:
    """The schema is in place and the file is in WAL mode: opening it needs no write (both are read-only checks)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version < SCHEMA_VERSION or db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        return False
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
    return names.issuperset(ADDED_TABLES) and all(c in _columns(db, t) for t, c, _ in ADDED_COLUMNS)


def set_up(db: sqlite3.Connection) -> None:
    """Create the schema and switch to WAL (both are no-ops on a database already set up, but they write)."""
    _use_wal(db)
    create_schema(db)


@contextmanager
def connect(path: Path, *, read_only: bool = False, immutable: bool = False) -> Iterator[sqlite3.Connection]:
    """A short-lived connection per operation: safe across threads, cheap with WAL.

    ``read_only`` opens with ``mode=ro`` (nothing can be written); ``immutable`` also skips the locks and the
    WAL index, which is how a WAL database in a read-only folder (or on a full disk) can still be read.
    SQLite's errors for a full disk and a read-only file come out as ``StoreFull`` and ``StoreReadOnly``.
    """
    try:
        if read_only or immutable:
            uri = Path(path).absolute().as_uri() + "?mode=ro" + ("&immutable=1" if immutable else "")
            db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        else:
            db = sqlite3.connect(path, timeout=30, isolation_level=None)
    except sqlite3.OperationalError as exc:
        _raise_translated(exc, Path(path))
    try:
        db.text_factory = _text  # bytes that are not UTF-8 (written by another tool) must not break a query
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=30000")
        db.row_factory = sqlite3.Row
        yield db
    except sqlite3.OperationalError as exc:
        _raise_translated(exc, Path(path))
    finally:
        db.close()


def _raise_translated(exc: sqlite3.OperationalError, path: Path) -> NoReturn:
    translated = translate(exc, path)
    if translated is exc:
        raise exc
    raise translated from exc


def translate(exc: sqlite3.OperationalError, path: Path) -> sqlite3.OperationalError:
    """SQLite's words for a full disk or a read-only database as our own error types; anything else unchanged."""
    if isinstance(exc, StudioError):
        return exc
    text = str(exc)
    if "database or disk is full" in text or ("disk I/O error" in text and _nearly_full(path)):
        return StoreFull(f"the job database {path}: {text}")
    if "readonly" in text or "read-only" in text:
        return StoreReadOnly(path, text)
    return exc


def unwritable(path: Path) -> str | None:
    """Why ``path`` (a database file, maybe not created yet) cannot be written, or None if it can.

    The folder counts too: SQLite keeps the WAL and its index beside the file. ``os.access`` answers for
    a read-only mount even as root (root ignores the permission bits, and then so can SQLite).
    """
    folder = path.parent
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return f"its folder {folder} is not writable"
    return None


def _nearly_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


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
    """Keep a damaged database for inspection and start an empty one (the studio must start).

    The copy gets a name no earlier copy has (a counter after the time, reserved with O_EXCL, so two
    damages within a second, or two processes at once, never overwrite one); its -wal and -shm files
    go with it under the same name, so SQLite opens them together.
    """
    target = _reserve(path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}"))
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.replace(Path(f"{target}{suffix}"))  # over our own empty reservation, for the main file
    log.error("the job database %s could not be read (%s); moved it to %s and started an empty one",
              path, exc, target)
    return target


def _reserve(base: Path) -> Path:
    """The first of ``base``, ``base-2``, ``base-3``... not yet used by a file or its companions, created empty."""
    number = 1
    while True:
        candidate = base if number == 1 else base.with_name(f"{base.name}-{number}")
        number += 1
        if any(Path(f"{candidate}{suffix}").exists() for suffix in ("-wal", "-shm")):
            continue
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return candidate

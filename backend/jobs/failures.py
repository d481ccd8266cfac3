"""How a job ended, for the user: its state and one sentence, from the exception alone (``isinstance``)."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from backend.errors import DiskFull, JobCancelled, StudioError
from backend.jobs.store import CANCELLED, FAILED

NEARLY_FULL_BYTES = 64 * 2**20  # below this much free space, SQLite's "disk I/O error" means a full disk


def classify_failure(exc: BaseException) -> tuple[str, str | None]:
    """Job state and a message a user can act on (details go to the log, never to the page)."""
    if isinstance(exc, JobCancelled):
        return CANCELLED, None
    if isinstance(exc, (StudioError, ValueError, OSError)):
        return FAILED, str(exc) or type(exc).__name__
    return FAILED, f"Unexpected error ({type(exc).__name__}: {exc}). Details are in the studio log."


def as_disk_full(exc: BaseException, where: Path) -> DiskFull | None:
    """A ``DiskFull`` if the disk filled up anywhere in the exception chain (PIL, SQLite and ffmpeg report
    it in their own types; SQLite's "disk I/O error" counts when the disk is indeed nearly full)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFull):
            return current
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return DiskFull(str(current.strerror or current))
        if isinstance(current, sqlite3.OperationalError):
            text = str(current)
            if "disk is full" in text or ("disk I/O error" in text and _nearly_full(where)):
                return DiskFull(f"the job database: {text}")
        current = current.__cause__ or current.__context__
    return None


def _nearly_full(where: Path) -> bool:
    try:
        return shutil.disk_usage(where).free < NEARLY_FULL_BYTES
    except OSError:
        return False

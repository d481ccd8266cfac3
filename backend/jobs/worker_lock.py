"""The one-worker-per-store lock: an OS file lock in the state folder, held while a process runs the worker."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO

from backend.errors import DiskFull, StudioError

LOCK_NAME = "worker.lock"


def take_worker_lock(state: Path) -> IO[str] | None:
    """The open, locked file (keep it open to hold the lock), or None when another process holds it."""
    try:
        state.mkdir(parents=True, exist_ok=True)
        handle = open(state / LOCK_NAME, "a+")  # noqa: SIM115 - held open for the worker's lifetime
    except OSError as exc:
        raise unwritable(state, exc) from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
    except OSError as exc:
        handle.close()
        raise unwritable(state, exc) from exc
    return handle


def unwritable(folder: Path, exc: OSError) -> StudioError:
    """The studio's state folder cannot be written: a full disk, or a read-only folder or disk."""
    if exc.errno == errno.ENOSPC:
        return DiskFull(f"{folder}: {exc.strerror}")
    return StudioError(f"The studio cannot write to {folder} ({exc.strerror or exc}): make the folder writable, "
                       "or point STUDIO_HOME at one that is.")

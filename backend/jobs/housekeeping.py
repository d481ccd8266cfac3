"""Housekeeping after every job and at start: work folders, the history cap, half-published copies.

Work folders of finished jobs go at once (the runner's ``discard_workdir``); those of failed,
cancelled and interrupted jobs are kept for ``resume`` and pruned after ``STUDIO_KEEP_WORK_DAYS``
(default 7). The history is capped at ``STUDIO_HISTORY_LIMIT`` finished jobs (default 1000, 0 = no
cap); delivered videos are the user's and are never deleted by this.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

from backend.jobs.store import AWAITING_REVIEW, DONE, QUEUED, RUNNING, JobStore
from backend.paths import RuntimePaths

log = logging.getLogger(__name__)

DEFAULT_HISTORY_LIMIT = 1000
DEFAULT_KEEP_WORK_DAYS = 7.0
_PARTIAL_PUBLISH = re.compile(r"^\..+\.partial-(\d+)$")  # export.publish's cross-filesystem temp name


def prune_work_folders(paths: RuntimePaths, store: JobStore, max_age_days: float | None = None) -> list[str]:
    """Delete work folders nobody can resume: unknown jobs, done ones, and failed ones older than the limit."""
    if max_age_days is None:
        max_age_days = env_number("STUDIO_KEEP_WORK_DAYS", DEFAULT_KEEP_WORK_DAYS)
    jobs_root = paths.temp / "jobs"
    if not jobs_root.is_dir():
        return []
    removed = []
    cutoff = time.time() - max_age_days * 86400
    for folder in jobs_root.iterdir():
        row = store.get(folder.name)
        waiting = row is not None and row.state in (QUEUED, RUNNING, AWAITING_REVIEW)
        keep = row is not None and (waiting or (row.finished or time.time()) > cutoff)
        if row is not None and row.state == DONE:
            keep = False
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    if removed:
        log.info("pruned %d old work folder(s)", len(removed))
    return removed


def prune_history(paths: RuntimePaths, store: JobStore, keep: int | None = None) -> list[str]:
    """Cap the history at ``keep`` finished jobs: the records and previews of the oldest go, videos stay."""
    if keep is None:
        keep = int(env_number("STUDIO_HISTORY_LIMIT", DEFAULT_HISTORY_LIMIT))
    if keep <= 0:
        return []
    removed = store.prune_history(keep)
    for job_id in removed:
        shutil.rmtree(paths.state / "previews" / job_id, ignore_errors=True)
    if removed:
        log.info("history capped at %d finished jobs: removed %d record(s)", keep, len(removed))
    return removed


def remove_stale_partials(outputs: Path) -> list[Path]:
    """Hidden ``.<name>.partial-<pid>`` copies left in outputs/ by a process killed mid-publish."""
    removed = []
    for path in outputs.glob(".*.partial-*"):
        match = _PARTIAL_PUBLISH.match(path.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.info("removed %d half-copied output(s) from an interrupted publish", len(removed))
    return removed


def env_number(name: str, default: float) -> float:
    """A numeric setting from the environment; a bad value is logged and the default used."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("ignoring %s=%r (not a number); using %g", name, raw, default)
        return default
    if value != value or value < 0:  # NaN or negative
        log.warning("ignoring %s=%r (must be 0 or more); using %g", name, raw, default)
        return default
    return value


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True

"""Model downloads in the background, one per preset, polled by whoever wants to show them.

``downloads.download`` is a blocking call with a byte callback; a page must not block on it (a click
would abort the script), so the manager runs each download in a thread of its own and keeps a small
``DownloadTask`` the UI polls. One manager per models folder (the orchestrator holds it), so every
browser tab sees the same tasks, and asking twice for the same preset joins the running download.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from backend.errors import DownloadError
from backend.models.downloads import download
from backend.models.registry import ModelRef

log = logging.getLogger(__name__)

GIB = 1024**3
DOWNLOADING, DONE, FAILED = "downloading", "done", "failed"


@dataclass
class DownloadTask:
    key: str
    total: int | None
    done: int = 0
    state: str = DOWNLOADING  # downloading | done | failed
    error: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def running(self) -> bool:
        return self.state == DOWNLOADING

    def progress(self, done: int, total: int | None) -> None:  # called from the download thread
        self.done, self.total = done, total or self.total


class DownloadManager:
    def __init__(self, models_root: Path) -> None:
        self.models_root = Path(models_root)
        self._lock = threading.Lock()
        self._tasks: dict[str, DownloadTask] = {}

    def task(self, ref: ModelRef) -> DownloadTask | None:
        """The latest download of ``ref`` started by this process (running or ended), if any."""
        with self._lock:
            return self._tasks.get(ref.key)

    def start(self, ref: ModelRef) -> DownloadTask:
        """Start the download of ``ref`` (or join the one already running); returns its task."""
        with self._lock:
            running = self._tasks.get(ref.key)
            if running is not None and running.running:
                return running
            task = self._tasks[ref.key] = DownloadTask(ref.key, total=int(ref.size_gb * GIB) or None)
        threading.Thread(target=self._work, args=(ref, task), name=f"studio-download-{ref.key}",
                         daemon=True).start()
        return task

    def _work(self, ref: ModelRef, task: DownloadTask) -> None:
        try:
            download(ref, self.models_root, progress=task.progress)
        except DownloadError as exc:  # offline, gated, disk full, ...: the message says what to do
            task.error, task.state = str(exc), FAILED
        except Exception as exc:  # noqa: BLE001 - the thread must record every failure for the page
            log.exception("download of %s failed", ref.key)
            task.error = f"Unexpected error ({type(exc).__name__}: {exc}). Details are in the studio log."
            task.state = FAILED
        else:
            task.state = DONE

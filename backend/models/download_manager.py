"""Model downloads in the background, one per preset of any kind, polled (and cancelled) by whoever shows them.

``downloads.download`` is a blocking call with a byte callback; a page must not block on it (a click
would abort the script), so the manager runs each download in a thread of its own and keeps a small
``DownloadTask`` the UI polls. One manager per models folder (the orchestrator holds it), so every
browser tab sees the same tasks, and asking twice for the same preset joins the running download.
Diffusers pipelines, single weights files, the planner LLM and the IP-Adapter all go through the same
``download`` (``needs.KINDS``), so each task is one byte count over every file of its model.

``cancel`` sets the task's event: the transfer stops at its next chunk, the files that finished stay for
the next attempt, and no completeness marker is written, so the folder reads "partial", never complete.
The CLI uses the same manager, so Ctrl-C there is the same cancel.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from backend.errors import DownloadError
from backend.models.downloads import DownloadCancelled, Fetch, abort_transfers, download
from backend.models.registry import ModelRef

log = logging.getLogger(__name__)

GIB = 1024**3
DOWNLOADING, CANCELLING, DONE, FAILED, CANCELLED = "downloading", "cancelling", "done", "failed", "cancelled"


@dataclass
class DownloadTask:
    key: str
    total: int | None
    done: int = 0
    state: str = DOWNLOADING  # downloading | cancelling | done | failed | cancelled
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    folder: Path | None = None  # where the model is, once done
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    ended: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def running(self) -> bool:
        return self.state in (DOWNLOADING, CANCELLING)

    def progress(self, done: int, total: int | None) -> None:  # called from the download thread
        self.done, self.total = done, total or self.total

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the download ended (done, failed or cancelled); False on timeout."""
        return self.ended.wait(timeout)


def combined(tasks: list[DownloadTask]) -> tuple[int, int | None]:
    """Bytes done and expected over several tasks: one progress bar for all the models a job needs."""
    totals = [t.total for t in tasks]
    return sum(t.done for t in tasks), (sum(totals) if all(totals) else None)  # type: ignore[arg-type]


class DownloadManager:
    def __init__(self, models_root: Path, *, fetch: Fetch | None = None) -> None:
        self.models_root = Path(models_root)
        self._fetch = fetch  # the hub's snapshot_download unless a test hands a double
        self._lock = threading.Lock()
        self._tasks: dict[str, DownloadTask] = {}

    def task(self, ref: ModelRef) -> DownloadTask | None:
        """The latest download of ``ref`` started by this process (running or ended), if any."""
        with self._lock:
            return self._tasks.get(ref.key)

    def running(self) -> list[DownloadTask]:
        with self._lock:
            return [task for task in self._tasks.values() if task.running]

    def start(self, ref: ModelRef, *, checksums: bool = False) -> DownloadTask:
        """Start the download of ``ref`` (or join the one already running); returns its task."""
        with self._lock:
            running = self._tasks.get(ref.key)
            if running is not None and running.running:
                return running
            task = self._tasks[ref.key] = DownloadTask(ref.key, total=int(ref.size_gb * GIB) or None)
        threading.Thread(target=self._work, args=(ref, task, checksums), name=f"studio-download-{ref.key}",
                         daemon=True).start()
        return task

    def cancel(self, ref: ModelRef) -> bool:
        """Stop the running download of ``ref``; False when none runs. The task ends "cancelled" shortly."""
        with self._lock:
            task = self._tasks.get(ref.key)
            if task is None or not task.running:
                return False
            task.cancel_event.set()
            task.state = CANCELLING
            alone = not any(t.running for t in self._tasks.values() if t is not task)
        if alone and self._fetch is None:  # the hub's Xet transfers are shared by every download in the process
            try:
                abort_transfers()
            except Exception:  # noqa: BLE001 - the chunk-level cancel still stops it
                log.warning("could not abort the hub's transfers for %s", ref.key, exc_info=True)
        log.info("download of %s cancelled by the user", ref.key)
        return True

    def _work(self, ref: ModelRef, task: DownloadTask, checksums: bool) -> None:
        try:
            task.folder = download(ref, self.models_root, progress=task.progress, fetch=self._fetch,
                                   checksums=checksums, cancel=task.cancel_event)
        except DownloadCancelled:
            task.state = CANCELLED
        except DownloadError as exc:  # offline, gated, disk full, ...: the message says what to do
            task.error, task.state = str(exc), FAILED
        except Exception as exc:  # noqa: BLE001 - the thread must record every failure for the page
            log.exception("download of %s failed", ref.key)
            task.error = f"Unexpected error ({type(exc).__name__}: {exc}). Details are in the studio log."
            task.state = FAILED
        else:
            task.state = DONE  # a cancel that came after the marker was written is too late to matter
        finally:
            task.ended.set()

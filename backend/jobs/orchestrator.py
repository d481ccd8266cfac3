"""VideoGenerator: the job queue and the one GPU worker thread.

Thread-safe and Streamlit-free: the UI, the CLI and the tests use the same object. Jobs live in
the SQLite store, so the queue survives restarts; live progress (step, ETA, previews, log lines)
is kept in memory and merged into the immutable ``JobStatus`` snapshots that callers poll.

Only one process at a time runs a worker over a given store (an OS file lock decides); another
process pointed at the same folder becomes a client: it can submit, watch and cancel, and the
worker process picks its jobs up.

After every job and at start the orchestrator runs the housekeeping (``housekeeping.py``); a job's
stages are run by the ``JobRunner``, and its failure is classified by the error family alone.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from backend.errors import AwaitingReview, DiskFull
from backend.jobs import housekeeping
from backend.jobs.admission import admit
from backend.jobs.database import StoreReadOnly
from backend.jobs.eta import Calibration, EtaEstimator
from backend.jobs.failures import as_disk_full, classify_failure
from backend.jobs.runner import JobHooks, JobOutcome, JobRunner
from backend.jobs.status import JobStatus, LiveProgress
from backend.jobs.store import (
    AWAITING_REVIEW,
    CANCELLED,
    DONE,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    JobRow,
    JobStore,
)
from backend.jobs.storyboard import StoryboardEditor
from backend.jobs.worker_lock import take_worker_lock
from backend.library_logging import FILE_ONLY
from backend.media.safe_files import unlink_inside
from backend.memory import HardwareProfile, MemoryManager, detect_hardware
from backend.memory.remembered import RememberedLevels
from backend.models.download_manager import DownloadManager
from backend.paths import RuntimePaths, runtime_paths
from backend.record import STAGE_NAMES
from backend.spec import JobSpec

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.5  # how often a running job checks the store for a cancel from another process
STORE_RETRIES = (0.5, 1.0, 2.0, 4.0)  # seconds between attempts to record a job's end (locked / full disk)
WORKER_BACKOFF_S = (1.0, 30.0)  # first and longest pause after the worker loop itself failed


class VideoGenerator:
    def __init__(self, paths: RuntimePaths | None = None, *, hardware: HardwareProfile | None = None,
                 start_worker: bool = True, poll_interval: float = 0.5) -> None:
        self.paths = (paths or runtime_paths()).ensure()
        self.store = JobStore(self.paths.database)
        self.hardware = hardware or detect_hardware()
        self.memory = MemoryManager(self.hardware, self.paths.models,
                                    remembered=RememberedLevels(self.paths.state / "memory_levels.json"))
        self.calibration = Calibration(self.store, self.hardware.gpu_name or "cpu")
        self.downloads = DownloadManager(self.paths.models)  # model downloads the UI starts and polls
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._live: dict[str, LiveProgress] = {}
        self._finished_logs: dict[str, tuple[str, ...]] = {}  # log lines of jobs this process ran
        self._ended: dict[str, tuple[str, str | None]] = {}  # jobs whose end the store could not record
        self._submitted: set[str] = set()  # jobs this process queued (its own; others' are handed over)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._lock_file: Any = None
        if start_worker:
            self.start()

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> bool:
        """Start the worker if no other process runs one over this store. Returns whether it started."""
        if self._worker is not None:
            return True
        if not self._acquire_worker_lock():
            log.warning("another studio process already runs the worker for %s; this one only submits and watches",
                        self.paths.outputs)
            return False
        interrupted = self.store.mark_interrupted()
        if interrupted:
            log.warning("marked %d job(s) interrupted after an unclean stop (resume keeps their finished "
                        "stages): %s", len(interrupted), interrupted)
        self._housekeeping()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work_loop, name="studio-gpu-worker", daemon=True)
        self._worker.start()
        return True

    @property
    def has_worker(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def shutdown(self, wait: bool = True, timeout: float = 60.0) -> None:
        """Stop the worker; queued jobs stay queued for whoever runs the worker next.

        A running job this process submitted is cancelled (its owner is leaving); one another process
        submitted is handed over: it goes back to the queue, keeping its finished stages, and the next
        worker (the waiting process takes over) resumes it.
        """
        self._stop.set()
        with self._lock:
            for job_id, live in self._live.items():
                live.handover = job_id not in self._submitted
                live.cancel.set()
            self._wake.notify_all()
        if self._worker is not None and wait:
            self._worker.join(timeout)
        self._worker = None
        self.memory.release()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def prune_work_folders(self, max_age_days: float | None = None) -> list[str]:
        """Delete work folders nobody can resume (see ``housekeeping.prune_work_folders``)."""
        return housekeeping.prune_work_folders(self.paths, self.store, max_age_days)

    def prune_history(self, keep: int | None = None) -> list[str]:
        """Cap the history at ``keep`` finished jobs (see ``housekeeping.prune_history``)."""
        return housekeeping.prune_history(self.paths, self.store, keep)

    def _housekeeping(self) -> None:
        """Prune work folders and history, drop stale partial copies; never fatal to the worker."""
        try:
            self.prune_work_folders()
            self.prune_history()
            housekeeping.remove_stale_partials(self.paths.outputs)
        except (OSError, ValueError, sqlite3.Error) as exc:
            log.warning("housekeeping failed (will try again after the next job): %s", exc)

    def _acquire_worker_lock(self) -> bool:
        if self.store.read_only:  # a worker must write: say so now, in one sentence, not at the first job
            raise StoreReadOnly(self.store.path, self.store.read_only)
        self._lock_file = take_worker_lock(self.paths.state)
        return self._lock_file is not None

    # --- public API ---------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> str:
        """Validate and queue a job; raises SpecError with a user-facing message if the spec is invalid."""
        return self.submit_all([spec])[0]

    def submit_all(self, specs: list[JobSpec]) -> list[str]:
        """Validate every spec, then queue them all in one transaction: all or none (a batch, Ctrl-C)."""
        admitted = [admit(spec, self.paths.models, hardware=self.memory.hardware) for spec in specs]
        jobs = [(uuid.uuid4().hex, spec.to_dict()) for spec in admitted]
        self.store.add_all(jobs)
        with self._lock:
            self._submitted.update(job_id for job_id, _ in jobs)
            self._wake.notify_all()
        log.info("queued %d job(s): %s", len(jobs), ", ".join(job_id[:8] for job_id, _ in jobs[:5]))
        return [job_id for job_id, _ in jobs]

    def status(self, job_id: str) -> JobStatus:
        row = self.store.get(job_id)
        if row is None:
            raise KeyError(f"no job {job_id}")
        return self._snapshot(row)

    def history(self, limit: int = 200) -> list[JobStatus]:
        """All jobs, newest first."""
        return [self._snapshot(r) for r in self.store.list(limit=limit)]

    def queue(self) -> list[JobStatus]:
        """Running and waiting jobs, in the order they will run."""
        rows = self.store.list(states=(RUNNING, QUEUED), limit=1000)
        return [self._snapshot(r) for r in sorted(rows, key=lambda r: (r.state != RUNNING, r.seq))]

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; True if it was active."""
        state = self.store.request_cancel(job_id)
        with self._lock:
            live = self._live.get(job_id)
            if live is not None:
                live.cancel.set()
        return state in (RUNNING, CANCELLED) and state is not None

    def requeue(self, job_id: str) -> bool:
        """Queue a failed, cancelled or interrupted job again; it resumes from its finished stages. A job waiting
        for review goes on with Animate instead (``storyboard_editor().animate``), never by being re-queued."""
        row = self.store.get(job_id)
        ok = row is not None and row.state != AWAITING_REVIEW and self.store.requeue(job_id)
        if ok:
            with self._lock:
                self._ended.pop(job_id, None)
                self._wake.notify_all()
        return ok

    def resume(self, job_id: str) -> bool:
        """The UI's and CLI's Resume: same as ``requeue`` (finished stages are kept, the rest re-run)."""
        return self.requeue(job_id)

    def storyboard_editor(self) -> StoryboardEditor:
        """Edits of a job waiting for review; an edit that draws a keyframe queues the job again."""
        return StoryboardEditor(self.paths, self.store)

    def resumable_stages(self, job_id: str) -> list[str]:
        """Stages a resume would keep (checkpointed, artifacts intact), in order; [] = starts over."""
        return list(self._runner().kept_stages(job_id))

    def delete(self, job_id: str, *, delete_files: bool = True) -> bool:
        """Remove a finished job from history (and its files, by default). Running jobs can't be deleted."""
        row = self.store.get(job_id)
        if row is None or row.state == RUNNING:
            return False
        if row.state == QUEUED:
            self.store.request_cancel(job_id)
        if delete_files:
            for name in (row.output, row.sidecar):
                if name:
                    unlink_inside(Path(name), self.paths.outputs)
            for preview in row.record.previews if row.record is not None else ():
                unlink_inside(Path(preview), self.paths.state)
        return self.store.delete(job_id)

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.2) -> JobStatus:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(job_id)
            if not status.is_active:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {status.state} after {timeout} s")
            time.sleep(poll)

    # --- worker -------------------------------------------------------------------------
    def _work_loop(self) -> None:
        from backend.library_logging import quiet_ml_libraries

        quiet_ml_libraries()
        failures = 0
        while not self._stop.is_set():
            try:
                row = self.store.claim_next()
                if row is None:
                    with self._lock:
                        self._wake.wait(self.poll_interval)
                    continue
                self._run_one(row)
                failures = 0
            except Exception:  # noqa: BLE001 - the worker must outlive a locked/full store or a bug
                failures += 1
                pause = min(WORKER_BACKOFF_S[1], WORKER_BACKOFF_S[0] * 2 ** (failures - 1))
                log.exception("the worker loop failed (%d in a row); retrying in %.0f s", failures, pause)
                self._stop.wait(pause)

    def _run_one(self, row: JobRow) -> None:
        job_id = row.id
        live = LiveProgress()
        with self._lock:
            self._live[job_id] = live
            self._ended.pop(job_id, None)
        error: str | None = None
        state = FAILED
        outcome: JobOutcome | None = None
        spec: JobSpec | None = None
        failure: BaseException | None = None
        review: AwaitingReview | None = None
        try:
            spec = JobSpec.from_dict(row.spec)  # inside the try: a spec the store can't give back fails the job
            outcome = self._execute(job_id, spec, live)
            state = DONE
        except AwaitingReview as paused:  # keyframes done: the storyboard waits for the user, the worker moves on
            state, review = AWAITING_REVIEW, paused
        except Exception as exc:  # noqa: BLE001 - every failure must end the job, not the worker
            failure = as_disk_full(exc, self.paths.root) or exc
            state, error = classify_failure(failure)
            if state == FAILED:
                log.error("job %s failed: %s", job_id, error, exc_info=exc, extra={FILE_ONLY: True})
            else:
                log.info("job %s %s", job_id, "handed over" if live.handover else "cancelled")
        finally:
            self.memory.after_job()  # cancelled or failed: the GPU memory of the attempt goes back too
        if state == CANCELLED and live.handover:
            state, error = INTERRUPTED, "handed over: the studio process running it stopped"
        elif isinstance(failure, DiskFull):
            self._runner().discard_scratch(job_id)  # give the disk back (the store may need it to say so)
        try:
            if review is not None:
                self.store.park_for_review(job_id, review.record, "storyboard ready: review it, then Animate")
            else:
                self._record_end(job_id, live, state, error, outcome)
            if live.handover and review is None:
                self.store.requeue(job_id)  # finished stages are kept: the next worker resumes it
        except Exception:
            with self._lock:  # the store cannot say how it ended (disk full): this process still knows
                self._ended[job_id] = (state, error)
            raise
        finally:
            with self._lock:
                live.add_log(f"{state}{': ' + error if error else ''}")
                self._live.pop(job_id, None)
                self._finished_logs[job_id] = tuple(live.log)
        if outcome is not None and spec is not None:
            self._runner().discard_workdir(job_id)  # only now: a crash before this point can still resume
            self.calibration.learn(spec, outcome.record)
        self._housekeeping()

    def _runner(self) -> JobRunner:
        return JobRunner(self.paths, self.memory, self.store)

    def _execute(self, job_id: str, spec: JobSpec, live: LiveProgress) -> JobOutcome:
        """Run the job's stages with progress, ETA and log lines wired to ``live``."""
        eta = EtaEstimator(STAGE_NAMES, self.calibration.estimates(spec))

        def begin_stage(stage: str) -> None:
            eta.begin(stage)
            self._progress(job_id, live, eta, stage, 0.0, f"{stage}…", None, None, None)

        def progress(stage: str, fraction: float, message: str, step: int | None, total: int | None,
                     preview: Path | None) -> None:
            self._progress(job_id, live, eta, stage, fraction, message, step, total, preview)

        def note(line: str) -> None:
            log.info("job %s: %s", job_id, line)
            with self._lock:
                live.add_log(line)

        return self._runner().run(job_id, spec, JobHooks(live.cancel, progress, begin_stage, note))

    def _record_end(self, job_id: str, live: LiveProgress, state: str, error: str | None,
                    outcome: JobOutcome | None) -> None:
        """Store how the job ended, retrying while the database is locked or the disk is full."""
        with self._lock:
            stage, message = live.stage, live.message
        if outcome is not None:
            ending = dict(output=str(outcome.output), sidecar=str(outcome.sidecar), record=outcome.record)
        else:
            ending = dict(error=error)
        for attempt, pause in enumerate((*STORE_RETRIES, None), start=1):
            try:
                self.store.finish(job_id, state, stage=stage or None, message=message or None, **ending)
                return
            except sqlite3.OperationalError as exc:
                if pause is None:
                    raise
                log.warning("could not record the end of job %s (attempt %d: %s); retrying", job_id, attempt, exc)
                time.sleep(pause)

    def _progress(self, job_id: str, live: LiveProgress, eta: EtaEstimator, stage: str, fraction: float,
                  message: str, step: int | None, total: int | None, preview: Path | None) -> None:
        overall, remaining = eta.update(fraction)
        now = time.monotonic()
        with self._lock:
            if message and message != live.message:
                live.add_log(f"{stage}: {message}")
            if step is None and stage == live.stage:  # a note within the stage keeps the last step shown
                step, total = live.step, live.total
            live.stage, live.fraction, live.message = stage, overall, message
            live.step, live.total, live.eta = step, total, remaining
            if preview is not None and str(preview) not in live.previews:
                live.previews.append(str(preview))
            write = now - live.last_store_write >= CANCEL_POLL_S or fraction >= 1.0
            if write:
                live.last_store_write = now
        if write and self.store.progress(job_id, stage, overall, message):
            live.cancel.set()  # cancel requested from another process (or tab through the store)

    # --- snapshots --------------------------------------------------------
    def _snapshot(self, row: JobRow) -> JobStatus:
        status = JobStatus(
            id=row.id, state=row.state, spec=row.spec, stage=row.stage, fraction=row.fraction,
            message=row.message, output=row.output, sidecar=row.sidecar, error=row.error, created=row.created,
            started=row.started, finished=row.finished, record=row.record,
            previews=tuple(row.record.previews) if row.record is not None else (),
        )
        with self._lock:
            live = self._live.get(row.id)
            ended = self._ended.get(row.id)
            if ended is not None and row.state == RUNNING:  # this process ended it; the store could not say
                status = replace(status, state=ended[0], error=ended[1])
            if live is not None and row.state == RUNNING:
                return replace(status, stage=live.stage, fraction=live.fraction, message=live.message,
                               step=live.step, total_steps=live.total, eta_seconds=live.eta,
                               previews=tuple(live.previews), log=tuple(live.log))
            logs = self._finished_logs.get(row.id)
        return replace(status, log=logs) if logs else status

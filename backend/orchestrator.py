"""VideoGenerator: the job queue and the one GPU worker thread.

Thread-safe and Streamlit-free: the UI, the CLI and the tests use the same object. Jobs live in
the SQLite store, so the queue survives restarts; live progress (step, ETA, previews, log lines)
is kept in memory and merged into the immutable ``JobStatus`` snapshots that callers poll.

Only one process at a time runs a worker over a given store (an OS file lock decides); another
process pointed at the same folder becomes a client: it can submit, watch and cancel, and the
worker process picks its jobs up.

Housekeeping after every job and at start: work folders of finished jobs go at once, those of
failed, cancelled and interrupted jobs are kept for ``resume`` and pruned after
``STUDIO_KEEP_WORK_DAYS`` (default 7); the history is capped at ``STUDIO_HISTORY_LIMIT`` finished
jobs (default 1000, 0 = no cap).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from backend.eta import EtaEstimator
from backend.memory import HardwareProfile, MemoryManager, OutOfMemoryAfterAllPlans, detect_hardware
from backend.models.loader import ModelNotAvailable
from backend.paths import RuntimePaths, runtime_paths
from backend.spec import JobSpec, SpecError
from backend.store import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobRow, JobStore

log = logging.getLogger(__name__)

LOG_LINES = 200
CANCEL_POLL_S = 0.5  # how often a running job checks the store for a cancel from another process
DEFAULT_HISTORY_LIMIT = 1000
DEFAULT_KEEP_WORK_DAYS = 7.0
STORE_RETRIES = (0.5, 1.0, 2.0, 4.0)  # seconds between attempts to record a job's end (locked / full disk)
WORKER_BACKOFF_S = (1.0, 30.0)  # first and longest pause after the worker loop itself failed
_PARTIAL_PUBLISH = re.compile(r"^\..+\.partial-(\d+)$")  # export.publish's cross-filesystem temp name
DISK_FULL = ("The disk is full: free some space (outputs/, temp/ or models/), then resume the job; "
             "its finished stages are kept.")


@dataclass(frozen=True)
class JobStatus:
    """An immutable snapshot of one job, safe to hand to any thread."""

    id: str
    state: str
    spec: dict[str, Any]
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    step: int | None = None
    total_steps: int | None = None
    eta_seconds: float | None = None
    previews: tuple[str, ...] = ()
    log: tuple[str, ...] = ()
    output: str | None = None
    sidecar: str | None = None
    error: str | None = None
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def is_active(self) -> bool:
        return self.state in (QUEUED, RUNNING)

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


@dataclass
class _Live:
    """Progress of the job this process is running (more detail than the store keeps)."""

    cancel: threading.Event = field(default_factory=threading.Event)
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    step: int | None = None
    total: int | None = None
    eta: float | None = None
    previews: list[str] = field(default_factory=list)
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    last_store_write: float = 0.0


class VideoGenerator:
    def __init__(self, paths: RuntimePaths | None = None, *, hardware: HardwareProfile | None = None,
                 start_worker: bool = True, poll_interval: float = 0.5) -> None:
        self.paths = (paths or runtime_paths()).ensure()
        self.store = JobStore(self.paths.database)
        self.hardware = hardware or detect_hardware()
        self.memory = MemoryManager(self.hardware, self.paths.models)
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._live: dict[str, _Live] = {}
        self._finished_logs: dict[str, tuple[str, ...]] = {}  # log lines of jobs this process ran
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
        """Stop the worker: the running job (if any) is cancelled, queued jobs stay queued."""
        self._stop.set()
        with self._lock:
            for live in self._live.values():
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
        """Delete work folders nobody can resume: unknown jobs, and failed ones older than the limit.

        Interrupted, failed and cancelled jobs keep theirs (for resume) for ``max_age_days``
        (env STUDIO_KEEP_WORK_DAYS, default 7).
        """
        if max_age_days is None:
            max_age_days = _env_number("STUDIO_KEEP_WORK_DAYS", DEFAULT_KEEP_WORK_DAYS)
        jobs_root = self.paths.temp / "jobs"
        if not jobs_root.is_dir():
            return []
        removed = []
        cutoff = time.time() - max_age_days * 86400
        for folder in jobs_root.iterdir():
            row = self.store.get(folder.name)
            keep = row is not None and (row.state in (QUEUED, RUNNING) or (row.finished or time.time()) > cutoff)
            if row is not None and row.state == DONE:
                keep = False
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        if removed:
            log.info("pruned %d old work folder(s)", len(removed))
        return removed

    def prune_history(self, keep: int | None = None) -> list[str]:
        """Cap the history at ``keep`` finished jobs (env STUDIO_HISTORY_LIMIT; 0 = no cap).

        Delivered videos stay in outputs/ (they are the user's); the records and previews of the
        oldest finished jobs go.
        """
        if keep is None:
            keep = int(_env_number("STUDIO_HISTORY_LIMIT", DEFAULT_HISTORY_LIMIT))
        if keep <= 0:
            return []
        removed = self.store.prune_history(keep)
        for job_id in removed:
            shutil.rmtree(self.paths.state / "previews" / job_id, ignore_errors=True)
        if removed:
            log.info("history capped at %d finished jobs: removed %d record(s)", keep, len(removed))
        return removed

    def _housekeeping(self) -> None:
        """Prune work folders and history, drop stale partial copies; never fatal to the worker."""
        try:
            self.prune_work_folders()
            self.prune_history()
            _remove_stale_partials(self.paths.outputs)
        except (OSError, ValueError, sqlite3.Error) as exc:
            log.warning("housekeeping failed (will try again after the next job): %s", exc)

    def _acquire_worker_lock(self) -> bool:
        self.paths.state.mkdir(parents=True, exist_ok=True)
        handle = open(self.paths.state / "worker.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle
        return True

    # --- public API ---------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> str:
        """Validate and queue a job; raises SpecError with a user-facing message if the spec is invalid."""
        spec = spec.validate().with_seed()
        _check_input_files(spec)
        _check_lut(spec)
        job_id = uuid.uuid4().hex
        self.store.add(job_id, spec.to_dict())
        log.info("queued job %s: %r", job_id, spec.prompt[:80])
        with self._lock:
            self._wake.notify_all()
        return job_id

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
        """Queue a failed, cancelled or interrupted job again; it resumes from its finished stages."""
        ok = self.store.requeue(job_id)
        if ok:
            with self._lock:
                self._wake.notify_all()
        return ok

    def resume(self, job_id: str) -> bool:
        """The UI's and CLI's Resume: same as ``requeue`` (finished stages are kept, the rest re-run)."""
        return self.requeue(job_id)

    def resumable_stages(self, job_id: str) -> list[str]:
        """Stages a resume would keep (checkpointed, artifacts intact), in order; [] = starts over."""
        return list(self._runner().intact_checkpoints(job_id))

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
                    _unlink_inside(Path(name), self.paths.outputs)
            for preview in row.record.get("previews", []):
                _unlink_inside(Path(preview), self.paths.state)
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
        live = _Live()
        with self._lock:
            self._live[job_id] = live
        error: str | None = None
        state = FAILED
        outcome = None
        spec: JobSpec | None = None
        try:
            spec = JobSpec.from_dict(row.spec)  # inside the try: a spec the store can't give back fails the job
            outcome = self._execute(job_id, spec, live)
            state = DONE
        except Exception as exc:  # noqa: BLE001 - every failure must end the job, not the worker
            state, error = _classify_failure(exc)
            if state == FAILED:
                log.exception("job %s failed", job_id)
            else:
                log.info("job %s cancelled", job_id)
        finally:
            self.memory.after_job()  # cancelled or failed: the GPU memory of the attempt goes back too
        try:
            self._record_end(job_id, live, state, error, outcome)
        finally:
            with self._lock:
                live.log.append(f"{time.strftime('%H:%M:%S')} {state}{': ' + error if error else ''}")
                self._live.pop(job_id, None)
                self._finished_logs[job_id] = tuple(live.log)
        if outcome is not None and spec is not None:
            from backend.job_runner import stage_units

            self._runner().discard_workdir(job_id)  # only now: a crash before this point can still resume
            self._calibrate(spec, outcome.record, stage_units(outcome.record))
        self._housekeeping()

    def _runner(self) -> Any:
        from backend.job_runner import JobRunner

        return JobRunner(self.paths, self.memory, self.store)

    def _execute(self, job_id: str, spec: JobSpec, live: _Live) -> Any:
        """Run the job's stages with progress and ETA wired to ``live``; returns the JobOutcome."""
        from backend.job_runner import STAGES

        eta = EtaEstimator(STAGES, self._calibrated_estimates(spec))

        def begin_stage(stage: str) -> None:
            eta.begin(stage)
            self._progress(job_id, live, eta, stage, 0.0, f"{stage}…", None, None, None)

        def progress(stage: str, fraction: float, message: str, step: int | None, total: int | None,
                     preview: Path | None) -> None:
            self._progress(job_id, live, eta, stage, fraction, message, step, total, preview)

        return self._runner().run(job_id, spec, live.cancel, progress, begin_stage)

    def _record_end(self, job_id: str, live: _Live, state: str, error: str | None, outcome: Any) -> None:
        """Store how the job ended, retrying while the database is locked or the disk is full."""
        with self._lock:
            stage, message = live.stage, live.message
        if outcome is not None:
            kwargs = dict(output=str(outcome.output), sidecar=str(outcome.sidecar), record=outcome.record)
        else:
            kwargs = dict(error=error)
        for attempt, pause in enumerate((*STORE_RETRIES, None), start=1):
            try:
                self.store.finish(job_id, state, stage=stage or None, message=message or None, **kwargs)
                return
            except sqlite3.OperationalError as exc:
                if pause is None:
                    raise
                log.warning("could not record the end of job %s (attempt %d: %s); retrying", job_id, attempt, exc)
                time.sleep(pause)

    def _progress(self, job_id: str, live: _Live, eta: EtaEstimator, stage: str, fraction: float, message: str,
                  step: int | None, total: int | None, preview: Path | None) -> None:
        overall, remaining = eta.update(fraction)
        now = time.monotonic()
        with self._lock:
            if message and message != live.message:
                live.log.append(f"{time.strftime('%H:%M:%S')} {stage}: {message}")
            live.stage, live.fraction, live.message = stage, overall, message
            live.step, live.total, live.eta = step, total, remaining
            if preview is not None and str(preview) not in live.previews:
                live.previews.append(str(preview))
            write = now - live.last_store_write >= CANCEL_POLL_S or fraction >= 1.0
            if write:
                live.last_store_write = now
        if write and self.store.progress(job_id, stage, overall, message):
            live.cancel.set()  # cancel requested from another process (or tab through the store)

    # --- snapshots and calibration --------------------------------------------------------
    def _snapshot(self, row: JobRow) -> JobStatus:
        status = JobStatus(
            id=row.id, state=row.state, spec=row.spec, stage=row.stage, fraction=row.fraction,
            message=row.message, output=row.output, sidecar=row.sidecar, error=row.error, created=row.created,
            started=row.started, finished=row.finished, record=row.record,
            previews=tuple(row.record.get("previews", ())),
        )
        with self._lock:
            live = self._live.get(row.id)
            if live is not None and row.state == RUNNING:
                return replace(status, stage=live.stage, fraction=live.fraction, message=live.message,
                               step=live.step, total_steps=live.total, eta_seconds=live.eta,
                               previews=tuple(live.previews), log=tuple(live.log))
            logs = self._finished_logs.get(row.id)
        return replace(status, log=logs) if logs else status

    def _calibration_key(self, spec: JobSpec, stage: str) -> str:
        role = "keyframes" if stage == "keyframes" else spec.engine
        return f"{stage}:{spec.model_set}:{role}:{self.hardware.gpu_name or 'cpu'}"

    def _calibrated_estimates(self, spec: JobSpec) -> dict[str, float | None]:
        """Expected seconds per stage from earlier jobs on this machine (None where unknown)."""
        from backend.job_runner import STAGES

        estimates: dict[str, float | None] = {}
        for stage in STAGES:
            per_unit = self.store.timing(self._calibration_key(spec, stage))
            estimates[stage] = per_unit * _expected_units(spec, stage) if per_unit else None
        return estimates

    def _calibrate(self, spec: JobSpec, record: dict[str, Any], units: dict[str, float]) -> None:
        for stage, data in record.get("stages", {}).items():
            if data.get("kept") or data.get("resumed"):
                continue  # part of the work was done by an earlier run: its seconds say nothing per unit
            count = units.get(stage, 1.0) or 1.0
            self.store.record_timing(self._calibration_key(spec, stage), float(data.get("seconds", 0.0)) / count)


def _expected_units(spec: JobSpec, stage: str) -> float:
    """The same units ``stage_units`` measures, predicted from the spec before the job runs."""
    from backend.stages.keyframes import TINY_STEPS
    from backend.stages.motion import engine_ref

    tiny = spec.model_set == "tiny"
    if stage == "keyframes":
        return spec.keyframe_count() * (spec.steps or (TINY_STEPS if tiny else spec.preset_values.keyframe_steps))
    if stage == "motion":
        frames = spec.duration * engine_ref(spec.model_set, spec.engine).fps
        return frames * (spec.steps or (TINY_STEPS if tiny else spec.preset_values.motion_steps))
    if stage == "finish":
        return float(spec.total_frames)
    return 1.0


def _classify_failure(exc: BaseException) -> tuple[str, str | None]:
    """Job state and a message a user can act on (details go to the log, never to the page)."""
    from backend.context import JobCancelled
    from backend.job_runner import ToolMissing
    from backend.stages.postprocess import FinishError

    if isinstance(exc, JobCancelled):
        return CANCELLED, None
    known = (SpecError, ModelNotAvailable, OutOfMemoryAfterAllPlans, ToolMissing, FinishError, ValueError, OSError)
    if _disk_full(exc):
        # FinishError carries ffmpeg's own words; a bare OSError would only add our temp path.
        return FAILED, DISK_FULL + (f" ({exc})" if isinstance(exc, FinishError) else "")
    if isinstance(exc, known):
        return FAILED, str(exc) or type(exc).__name__
    return FAILED, f"Unexpected error ({type(exc).__name__}: {exc}). Details are in the studio log."


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC anywhere in the exception chain (PIL and ffmpeg wrappers re-raise it as other types)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        if isinstance(current, sqlite3.OperationalError) and "disk is full" in str(current):
            return True
        if getattr(current, "no_space", False):  # export.EncodeFailed
            return True
        current = current.__cause__ or current.__context__
    return False


def _check_input_files(spec: JobSpec) -> None:
    for name in ("image", "video"):
        value = getattr(spec, name)
        if value and not Path(value).is_file():
            raise SpecError(name, f"The input {name} file does not exist any more; upload it again.")


def _check_lut(spec: JobSpec) -> None:
    """A malformed LUT is refused now, not after minutes of generation (LutError names the line)."""
    if not spec.post.lut:
        return
    from backend.luts import LutError, load_cube

    try:
        load_cube(Path(spec.post.lut))
    except LutError as exc:
        raise SpecError("post.lut", str(exc)) from exc


def _env_number(name: str, default: float) -> float:
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


def _remove_stale_partials(outputs: Path) -> list[Path]:
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _unlink_inside(path: Path, folder: Path) -> None:
    """Delete ``path`` only if it resolves inside ``folder`` (a record never deletes elsewhere)."""
    from backend.safe_files import UnsafePath, resolve_inside

    try:
        target = resolve_inside(path, folder)
        if target.is_file():
            target.unlink()
    except UnsafePath as exc:
        log.warning("not deleting %s: %s", path, exc)
    except OSError as exc:
        log.warning("could not delete %s: %s", path, exc)

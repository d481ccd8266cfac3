"""The fleet driver: start or join Ray, one actor per GPU, feed jobs to free workers, collect the files.

Jobs go to whichever worker is free (a job holds one worker until it ends). A worker that dies mid-job
(killed, out of host memory, its node lost) is replaced, and its job goes back to the front of the queue
for another worker, up to ``max_attempts`` times; the other workers carry on. A job that fails by itself
(a bad input found late, a model missing on that node) is reported and not retried. Each delivered MP4
and sidecar is written into ``out`` (atomically) and the job entered in the ledger, so a re-run skips it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from backend.fleet.jobs import (
    DONE,
    FAILED,
    SKIPPED,
    FleetJob,
    FleetRecord,
    Ledger,
    WorkerInfo,
    WorkerResult,
    write_atomic,
)
from backend.fleet.worker import FleetWorker
from backend.paths import REPO_ROOT

log = logging.getLogger(__name__)
FORWARDED_ENV = ("STUDIO_MODELS_DIR", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "HF_HOME")


def init_arguments(address: str = "local", num_cpus: int | None = None) -> dict[str, Any]:
    """``ray.init`` arguments: workers find the studio's code and models and stay offline like the driver.

    ``local`` starts a private cluster on this machine; anything else joins one (``auto``, ``HOST:PORT``).
    Every node must hold the studio at the same path (its code, and its models unless ``--models``).
    """
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH"))))
    kwargs: dict[str, Any] = dict(runtime_env={"env_vars": env}, include_dashboard=False, log_to_driver=False,
                                  configure_logging=False)
    if address == "local":
        kwargs["num_cpus"] = num_cpus
    else:
        kwargs["address"] = address
    return kwargs


class FleetError(Exception):
    """The fleet cannot run at all (no Ray, no cluster, no GPU to put a worker on)."""


@dataclass(frozen=True)
class FleetOptions:
    out: Path
    address: str = "local"  # local = a private cluster on this machine; auto = the running cluster; or host:port
    gpus_per_worker: float = 1.0  # 0 = CPU workers (tests, or a machine without a GPU)
    workers: int | None = None  # default: one per GPU the cluster has (1 with --gpus-per-worker 0)
    max_attempts: int = 3  # a job whose worker died is tried this many times in all
    num_cpus: int | None = None  # CPUs of a local cluster (default: Ray's count)
    work_root: Path | None = None  # node-local folder for the workers' homes (default: the temp folder)
    models: Path | None = None  # models folder on every node (default: each node's studio models/)
    threads: int | None = None  # CPU threads per worker (default: the driver's, as the studio here uses)


Started = Callable[[FleetJob, WorkerInfo], None]


@dataclass
class _Slot:
    """One live worker: its actor handle and where it runs."""

    actor: Any
    info: WorkerInfo


class Fleet:
    """A pool of worker actors on a Ray cluster; ``run`` takes jobs and gives back one record per job."""

    def __init__(self, options: FleetOptions, worker_class: type = FleetWorker,
                 actor_options: dict[str, Any] | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise FleetError("Ray is not installed: run ./launch.sh fleet (it installs requirements-fleet.txt)") from exc
        self.ray = ray
        self.options = options
        self.worker_class = ray.remote(worker_class)
        self.actor_options = actor_options
        self.started_ray = False
        self.threads = options.threads or _studio_threads()
        self.slots: list[_Slot] = []
        self.replacements = 0

    # --- cluster and workers ---------------------------------------------------------------
    def __enter__(self) -> "Fleet":
        if not self.ray.is_initialized():
            try:
                self.ray.init(**init_arguments(self.options.address, self.options.num_cpus))
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise FleetError(f"cannot reach a Ray cluster at {self.options.address!r}: {exc}") from exc
            self.started_ray = True
        for index in range(self.worker_count()):
            self.slots.append(self._new_slot(f"w{index}"))
        return self

    def __exit__(self, *exc: object) -> None:
        for slot in self.slots:
            try:
                self.ray.get(slot.actor.close.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - a dead or stuck worker: kill it below
                pass
            self.ray.kill(slot.actor)
        self.slots.clear()
        if self.started_ray:
            self.ray.shutdown()

    def worker_count(self) -> int:
        gpus = self.options.gpus_per_worker
        if gpus <= 0:
            return max(1, self.options.workers or 1)
        available = int(self.ray.cluster_resources().get("GPU", 0) // gpus)
        if available < 1:
            raise FleetError(f"the Ray cluster has no GPU for a worker needing {gpus:g}; "
                             "use --gpus-per-worker 0 to run on CPUs (slow; fine for the tiny models)")
        return min(available, self.options.workers or available)

    def _new_slot(self, name: str) -> _Slot:
        options = self.actor_options or {"num_gpus": self.options.gpus_per_worker, "num_cpus": 1}
        work_root = str(self.options.work_root) if self.options.work_root else None
        models = str(self.options.models) if self.options.models else None
        actor = self.worker_class.options(**options).remote(name, work_root, models, self.threads)
        try:
            info = self.ray.get(actor.info.remote(), timeout=600)
        except self.ray.exceptions.GetTimeoutError as exc:
            raise FleetError(f"worker {name} did not start within 10 minutes (not enough resources?)") from exc
        return _Slot(actor, info)

    # --- the batch ---------------------------------------------------------------------------
    def run(self, jobs: list[FleetJob], on_record: Callable[[FleetRecord], None] = lambda r: None,
            on_start: Started | None = None) -> list[FleetRecord]:
        ledger = Ledger(self.options.out)
        records: list[FleetRecord] = []

        def report(record: FleetRecord) -> None:
            records.append(record)
            on_record(record)

        pending: deque[FleetJob] = deque()
        for job in jobs:
            done = ledger.done(job.key)
            if done is not None:
                report(replace(done, index=job.index, status=SKIPPED, attempts=0))
            else:
                pending.append(job)
        idle = deque(self.slots)
        running: dict[Any, tuple[FleetJob, _Slot, float]] = {}
        while pending or running:
            while pending and idle:
                job, slot = pending.popleft(), idle.popleft()
                running[slot.actor.run.remote(job)] = (job, slot, time.monotonic())
                if on_start is not None:
                    on_start(job, slot.info)
            if not running:  # jobs left and no worker to run them
                for job in pending:
                    report(FleetRecord(job.index, job.key, FAILED, error="no worker left to run it",
                                       seed=job.spec.get("seed"), attempts=job.attempt - 1))
                break
            ready, _ = self.ray.wait(list(running), num_returns=1)
            job, slot, began = running.pop(ready[0])
            try:
                result: WorkerResult = self.ray.get(ready[0])
            except self.ray.exceptions.RayActorError as exc:
                log.warning("worker %s (pid %d) died running job %d: %s", slot.info.name, slot.info.pid,
                            job.index, type(exc).__name__)
                self._replace(slot, idle)
                if job.attempt < self.options.max_attempts:
                    pending.appendleft(replace(job, attempt=job.attempt + 1))
                else:
                    report(FleetRecord(job.index, job.key, FAILED, seed=job.spec.get("seed"), attempts=job.attempt,
                                       error=f"its worker died {job.attempt} times (last: {slot.info.name})"))
                continue
            except self.ray.exceptions.RayError as exc:
                idle.append(slot)
                report(FleetRecord(job.index, job.key, FAILED, error=f"the worker could not run it: {exc}",
                                   seed=job.spec.get("seed"), worker=slot.info.name, attempts=job.attempt))
                continue
            idle.append(slot)
            report(self._collect(job, result, ledger, time.monotonic() - began))
        return sorted(records, key=lambda r: r.index)

    def _replace(self, dead: _Slot, idle: deque) -> None:
        self.slots.remove(dead)
        self.ray.kill(dead.actor)
        if self.replacements >= max(1, len(self.slots) + 1):  # a crash loop: carry on with the workers left
            return
        self.replacements += 1
        try:
            slot = self._new_slot(f"{dead.info.name}r{self.replacements}")
        except (FleetError, self.ray.exceptions.RayError) as exc:
            log.warning("could not replace worker %s: %s", dead.info.name, exc)
            return
        self.slots.append(slot)
        idle.append(slot)

    def _collect(self, job: FleetJob, result: WorkerResult, ledger: Ledger, seconds: float) -> FleetRecord:
        seed = job.spec.get("seed")
        if result.error is not None:
            return FleetRecord(job.index, job.key, FAILED, error=result.error, seed=seed, worker=result.worker,
                               attempts=job.attempt, seconds=round(seconds, 3))
        out = self.options.out
        out.mkdir(parents=True, exist_ok=True)
        video = out / Path(result.video_name).name  # a name the runner made (slug + id); never a path
        sidecar = out / Path(result.sidecar_name).name
        write_atomic(video, result.video)
        write_atomic(sidecar, _sidecar_for(result.sidecar, video))
        record = FleetRecord(job.index, job.key, DONE, output=str(video), sidecar=str(sidecar), seed=seed,
                             worker=result.worker, attempts=job.attempt, seconds=round(seconds, 3),
                             stages=result.stages)
        ledger.add(record)
        return record


def _studio_threads() -> int:
    """The CPU threads the studio's own worker uses on this machine (torch's default here)."""
    import torch

    return torch.get_num_threads()


def _sidecar_for(data: bytes, video: Path) -> bytes:
    """The worker's sidecar with ``output`` pointing at the collected video."""
    import json

    from backend.record import JobRecord

    record = JobRecord.from_dict(json.loads(data))
    record.output = str(video)
    return json.dumps(record.to_dict(), indent=2, ensure_ascii=False, default=str).encode("utf-8")

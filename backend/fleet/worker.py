"""One fleet worker: the body of a Ray actor that owns a ``JobRunner`` on one GPU.

The worker keeps one ``MemoryManager`` for its life, so the models of the first job stay resident for
the next (model loading dominates small jobs). Each worker has its own node-local home (work folders,
a private job store for the stage checkpoints, its outputs) and sends the delivered MP4 and sidecar
back to the driver as bytes, so the fleet needs no shared disk; the local copies are then removed.
This module does not import Ray: the driver wraps ``FleetWorker`` in ``ray.remote``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from backend.fleet.jobs import FleetJob, WorkerInfo, WorkerResult
from backend.jobs.failures import classify_failure
from backend.jobs.runner import JobHooks, JobRunner
from backend.jobs.store import JobStore
from backend.library_logging import quiet_ml_libraries
from backend.memory import MemoryManager, detect_hardware
from backend.paths import RuntimePaths, runtime_paths
from backend.spec import JobSpec

log = logging.getLogger(__name__)


class FleetWorker:
    def __init__(self, name: str, work_root: str | None = None, models: str | None = None,
                 threads: int | None = None) -> None:
        quiet_ml_libraries()
        if threads:  # Ray caps an actor's CPU threads at its num_cpus; float sums (and so frames) depend on it
            import torch

            torch.set_num_threads(threads)
        self.name = name
        root = Path(work_root or tempfile.gettempdir()) / f"studio-fleet-{name}-{os.getpid()}"
        self.paths = RuntimePaths(root=root, models=Path(models) if models else runtime_paths().models,
                                  outputs=root / "outputs", temp=root / "temp", uploads=root / "uploads").ensure()
        self.hardware = detect_hardware()
        self.memory = MemoryManager(self.hardware, self.paths.models)  # lives as long as the actor: models stay
        self.store = JobStore(self.paths.database)
        self.runner = JobRunner(self.paths, self.memory, self.store)

    def info(self) -> WorkerInfo:
        return WorkerInfo(self.name, os.getpid(), socket.gethostname(), str(self.paths.root), self.hardware.gpu_name)

    def run(self, job: FleetJob) -> WorkerResult:
        started = time.monotonic()
        job_id = job.job_id
        try:
            spec = JobSpec.from_dict(job.spec)
            if self.store.get(job_id) is None:
                self.store.add(job_id, job.spec)
            hooks = JobHooks(threading.Event(), lambda *args: None, lambda stage: None,
                             lambda line: log.info("job %s: %s", job_id[:8], line))
            outcome = self.runner.run(job_id, spec, hooks)
            result = WorkerResult(outcome.output.name, outcome.output.read_bytes(), outcome.sidecar.name,
                                  outcome.sidecar.read_bytes(), self.name, round(time.monotonic() - started, 3),
                                  outcome.record.stage_seconds())
            for path in (outcome.output, outcome.sidecar):
                path.unlink(missing_ok=True)
        except Exception as exc:  # noqa: BLE001 - a failed job must not end the worker
            state, error = classify_failure(exc)
            log.error("job %s %s: %s", job_id[:8], state, error, exc_info=exc)
            result = WorkerResult("", b"", "", b"", self.name, round(time.monotonic() - started, 3),
                                  error=error or state)
        finally:
            self.memory.after_job()
        self.store.delete(job_id)
        self.runner.discard_workdir(job_id)
        shutil.rmtree(self.paths.state / "previews" / job_id, ignore_errors=True)
        return result

    def close(self) -> None:
        """Free the models and remove the worker's home (a worker killed outright leaves it for the OS)."""
        self.memory.release()
        shutil.rmtree(self.paths.root, ignore_errors=True)

"""Benchmark: the fleet driver's scheduling overhead and throughput against perfect linear scaling.

    python -m bench.fleet --workers 1,2,4 --simulate-gpu-seconds 30 --jobs 16 [--json]

No model runs here. Each worker is the real fleet driver's actor pool with a **simulated GPU stage**: a
timed wait of S seconds standing in for denoising (labelled ``simulated-gpu`` in every row), returning a
few bytes the driver collects, writes and enters in its ledger like a real video. On a local Ray cluster
it measures, per worker count W: wall time for N jobs, throughput (jobs/hour), the ideal (W / S), the
fraction of linear scaling reached (ideal wall time / measured wall time), and the driver's overhead per
job. Worker start-up (Ray actors) is timed separately: a real worker pays it once, then keeps its models.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from backend.fleet.jobs import FleetJob, WorkerInfo, WorkerResult, spec_key
from backend.record import JobRecord

STAGE_LABEL = "simulated-gpu (a timed wait standing in for denoising; no model runs)"


class SimulatedWorker:
    """A fleet worker whose one stage is a timed wait (same interface as ``FleetWorker``)."""

    def __init__(self, name: str, work_root: str | None = None, models: str | None = None,
                 threads: int | None = None) -> None:
        self.name = name
        self.seconds = float(os.environ.get("BENCH_SIMULATE_GPU_SECONDS", "1"))

    def info(self) -> WorkerInfo:
        return WorkerInfo(self.name, os.getpid(), socket.gethostname(), "", "simulated")

    def run(self, job: FleetJob) -> WorkerResult:
        started = time.monotonic()
        time.sleep(self.seconds)  # the simulated GPU stage
        payload = json.dumps({"job": job.index, "stage": STAGE_LABEL}).encode()
        sidecar = json.dumps(JobRecord(id=job.job_id, spec=job.spec, note=STAGE_LABEL).to_dict()).encode()
        return WorkerResult(f"sim-{job.key[:12]}.mp4", payload, f"sim-{job.key[:12]}.json", sidecar, self.name,
                            round(time.monotonic() - started, 3), {"simulated-gpu": self.seconds})

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Row:
    workers: int
    jobs: int
    simulated_gpu_seconds: float
    stage: str
    startup_s: float
    wall_s: float
    jobs_per_hour: float
    ideal_jobs_per_hour: float
    fraction_of_linear: float
    overhead_per_job_s: float


def measure(workers: int, jobs: int, seconds: float) -> Row:
    from backend.fleet.driver import Fleet, FleetOptions

    batch = [FleetJob(i, spec_key({"bench": i, "run": time.time_ns()}), {"seed": i}) for i in range(jobs)]
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as out:
        options = FleetOptions(out=Path(out), gpus_per_worker=0, workers=workers, threads=1)
        began = time.monotonic()
        with Fleet(options, worker_class=SimulatedWorker, actor_options={"num_cpus": 0}) as fleet:
            started = time.monotonic()
            records = fleet.run(batch)
            wall = time.monotonic() - started
        if any(r.status != "done" for r in records):
            raise SystemExit(f"a simulated job did not finish: {[r.error for r in records if r.error]}")
    ideal_wall = math.ceil(jobs / workers) * seconds
    return Row(workers, jobs, seconds, STAGE_LABEL, round(started - began, 2), round(wall, 3),
               round(jobs / wall * 3600, 1), round(workers / seconds * 3600, 1), round(ideal_wall / wall, 4),
               round((wall - ideal_wall) / math.ceil(jobs / workers), 4))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--simulate-gpu-seconds", type=float, default=30.0, help="seconds of simulated GPU per job")
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    os.environ["BENCH_SIMULATE_GPU_SECONDS"] = str(args.simulate_gpu_seconds)  # reaches the actors (runtime_env)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")

    import ray

    from backend.fleet.driver import init_arguments

    kwargs = init_arguments("local", num_cpus=max(counts))
    kwargs["runtime_env"]["env_vars"]["BENCH_SIMULATE_GPU_SECONDS"] = str(args.simulate_gpu_seconds)
    ray.init(**kwargs)
    try:
        rows = [measure(n, args.jobs, args.simulate_gpu_seconds) for n in counts]
    finally:
        ray.shutdown()
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__,
               "host": platform.platform()}
    if args.json:
        for row in rows:
            print(json.dumps({**asdict(row), "machine": machine}))
        return 0
    print(f"fleet benchmark ({STAGE_LABEL}); {machine}")
    print("| workers | jobs | S (s) | start-up (s) | wall (s) | jobs/h | ideal jobs/h | of linear | overhead/job (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.workers} | {r.jobs} | {r.simulated_gpu_seconds:g} | {r.startup_s} | {r.wall_s} | {r.jobs_per_hour}"
              f" | {r.ideal_jobs_per_hour} | {r.fraction_of_linear:.3f} | {r.overhead_per_job_s} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

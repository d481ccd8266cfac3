"""The fleet on a local Ray cluster (2 CPUs, CPU workers): a manifest's jobs are spread over workers,
give the same frames as the single-machine studio, survive a worker killed mid-job, and a re-run skips
what is done. One bad manifest item is reported and does not stop the others."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from backend.cli.manifest import load_manifest
from backend.fleet.driver import Fleet, FleetOptions, init_arguments
from backend.fleet.jobs import DONE, INVALID, SKIPPED, FleetJob, WorkerInfo, prepare
from backend.jobs.orchestrator import VideoGenerator
from backend.media.video_io import iter_frames
from backend.paths import runtime_paths
from backend.spec import JobSpec

pytestmark = [pytest.mark.tiny, pytest.mark.e2e]

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parent.parent
TINY = {"model_set": "tiny", "duration": 1, "fps": 8, "width": 256, "height": 144}
PROMPTS = ("a calm lake", "a red fox in snow", "a city at night", "waves on rocks")


@pytest.fixture(scope="module")
def cluster():
    ray.init(**init_arguments("local", num_cpus=2))
    yield
    ray.shutdown()


def write_manifest(folder: Path) -> Path:
    items = [{"prompt": prompt, "seed": seed, **TINY} for seed, prompt in enumerate(PROMPTS, start=1)]
    items.insert(2, {"prompt": "broken", "fps": "fast"})  # one bad item among them
    path = folder / "batch.json"
    path.write_text(json.dumps(items))
    return path


def kill_when_running(job: FleetJob, info: WorkerInfo) -> None:
    """SIGKILL the worker as soon as the job's work folder exists (the job is mid-run, nothing delivered)."""
    workdir = Path(info.home) / "temp" / "jobs" / job.job_id

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not workdir.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(info.pid, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def frames_of(path: str) -> np.ndarray:
    return np.stack(list(iter_frames(Path(path))))


def test_four_jobs_on_two_workers_survive_a_kill_match_the_studio_and_resume(cluster, tmp_path):
    home = runtime_paths(tmp_path / "home").ensure()
    items = load_manifest(write_manifest(tmp_path), home.uploads)
    jobs, invalid = prepare(items)
    assert len(jobs) == 4 and [r.status for r in invalid] == [INVALID]
    assert invalid[0].index == 2 and "manifest item 2" in invalid[0].error and "fps" in invalid[0].error

    out = tmp_path / "out"
    options = FleetOptions(out=out, gpus_per_worker=0, workers=2, work_root=tmp_path / "workers")
    killed: list[WorkerInfo] = []

    def on_start(job: FleetJob, info: WorkerInfo) -> None:
        if job.index == 0 and job.attempt == 1:
            killed.append(info)
            kill_when_running(job, info)

    with Fleet(options) as fleet:
        records = fleet.run(jobs, on_start=on_start)
        assert [r.status for r in records] == [DONE] * 4, [r.error for r in records]
        first = records[0]
        assert first.attempts == 2 and killed and first.worker != killed[0].name
        assert {r.worker for r in records} - {killed[0].name}  # the others carried on
        videos = sorted(out.glob("*.mp4"))
        assert len(videos) == 4 and len(list(out.glob("*.json"))) == 4
        sidecar = json.loads(Path(first.sidecar).read_text())
        assert sidecar["output"] == first.output and sidecar["spec"]["seed"] == 1

        again = fleet.run(jobs)  # a killed batch resumes: everything done is skipped
        assert [r.status for r in again] == [SKIPPED] * 4
        assert [r.output for r in again] == [r.output for r in records]

    studio = VideoGenerator(home)
    try:
        for record, job in zip(records, jobs):
            status = studio.wait(studio.submit(JobSpec.from_dict(job.spec)), timeout=300)
            assert status.state == "done", status.error
            assert np.array_equal(frames_of(record.output), frames_of(status.output)), record.index
    finally:
        studio.shutdown()


def test_fleet_command_reports_an_unusable_manifest_in_one_line(tmp_path):
    manifest = tmp_path / "batch.json"
    manifest.write_text("{not json")
    env = dict(os.environ, STUDIO_HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "backend", "fleet", "--manifest", str(manifest)],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().startswith("error:") and "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_batch_item_asking_for_review_is_refused_with_its_reason(tmp_path):
    home = runtime_paths(tmp_path / "home").ensure()
    path = tmp_path / "batch.json"
    path.write_text(json.dumps([{"prompt": "a kite", **TINY}, {"prompt": "a boat", "review": True, **TINY}]))
    jobs, invalid = prepare(load_manifest(path, home.uploads))
    assert len(jobs) == 1 and [r.status for r in invalid] == [INVALID]
    assert "manifest item 1" in invalid[0].error and "review" in invalid[0].error

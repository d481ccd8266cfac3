"""Reliability round 2, the job layer: two processes sharing one queue, a batch interrupted while it is
queued, kills and cancels around publishing a video, a full disk under the worker, and no traceback on
the terminal. Each case is run the way a user would hit it: real processes, real signals, named kill points.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.faults import KILL_AT
from backend.jobs.orchestrator import VideoGenerator
from backend.paths import runtime_paths
from backend.spec import JobSpec

pytestmark = [pytest.mark.e2e, pytest.mark.tiny]

REPO = Path(__file__).resolve().parents[1]
TINY = ["--models", "tiny", "--duration", "1", "--fps", "8", "--size", "256x144"]
TIMEOUT = 240


def cli(home: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    environment = {**os.environ, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "backend", *args], cwd=REPO, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, err


def wait_for(condition, timeout: float = TIMEOUT, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def states(home: Path) -> dict[str, str]:
    database = runtime_paths(home).database
    if not database.exists():
        return {}
    try:
        with sqlite3.connect(database) as db:
            return {row[0]: row[1] for row in db.execute("SELECT json_extract(spec, '$.prompt'), state FROM jobs")}
    except sqlite3.OperationalError:  # the first process is still creating the schema
        return {}


def test_a_job_from_a_second_process_runs_when_the_first_leaves(tmp_path):
    """Case 3: `generate A &; generate B` — B used to end cancelled when A's process left."""
    home = tmp_path / "home"
    first = cli(home, "generate", "--prompt", "job A", *TINY, "--steps", "4")
    wait_for(lambda: states(home).get("job A") == "running")
    second = cli(home, "generate", "--prompt", "job B", *TINY, "--json")
    assert finish(first)[0] == 0
    code, out, err = finish(second)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["status"] == "done" and "Traceback" not in err
    assert states(home) == {"job A": "done", "job B": "done"}


def test_when_the_owner_is_interrupted_the_waiting_process_takes_the_queue_over(tmp_path):
    """Case 3: Ctrl-C the process that runs the queue: its own job is cancelled, the other one still runs."""
    home = tmp_path / "home"
    owner = cli(home, "generate", "--prompt", "job A", *TINY, "--steps", "30")
    wait_for(lambda: states(home).get("job A") == "running")
    waiting = cli(home, "generate", "--prompt", "job B", *TINY, "--json")
    wait_for(lambda: "job B" in states(home))
    owner.send_signal(signal.SIGINT)
    code, _, err = finish(owner)
    assert code == 130 and "Traceback" not in err
    code, out, err = finish(waiting)
    assert code == 0, err
    assert "took over the queue" in err and json.loads(out.splitlines()[-1])["status"] == "done"
    assert states(home) == {"job A": "cancelled", "job B": "done"}


def test_an_interrupted_batch_queues_all_of_it_or_nothing(tmp_path):
    """Case 6: Ctrl-C while a 10,000-job manifest is being submitted used to leave 1,461 jobs queued."""
    home = tmp_path / "home"
    manifest = tmp_path / "batch.json"
    manifest.write_text(json.dumps([{"prompt": f"job {i}", "model_set": "tiny", "duration": 1, "fps": 8,
                                     "width": 256, "height": 144} for i in range(10_000)]))
    proc = cli(home, "generate", "--manifest", str(manifest))
    wait_for(lambda: runtime_paths(home).database.exists())
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert "Traceback" not in err and code == 130
    assert len(states(home)) in (0, 10_000)


def test_a_kill_right_after_the_video_is_published_leaves_one_video_with_its_record(tmp_path):
    """Case 7: a kill between publishing the MP4 and recording it; resume used to add a second copy."""
    home = tmp_path / "home"
    code, _, _ = finish(cli(home, "generate", "--prompt", "killed after publish", *TINY,
                            env={KILL_AT: "after-publish"}))
    assert code == -signal.SIGKILL
    outputs = runtime_paths(home).outputs
    (orphan,) = outputs.glob("*.mp4")  # published, no sidecar yet
    job_id = next(iter(_job_ids(home)))
    code, out, err = finish(cli(home, "resume", job_id[:8], "--json"))
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["status"] == "done" and Path(summary["output"]) == orphan  # the same file, adopted
    assert sorted(p.name for p in outputs.iterdir() if not p.name.startswith(".")) == sorted([
        orphan.name, orphan.with_suffix(".json").name])


def _job_ids(home: Path) -> list[str]:
    with sqlite3.connect(runtime_paths(home).database) as db:
        return [row[0] for row in db.execute("SELECT id FROM jobs")]


@pytest.fixture
def generator(tmp_path):
    gen = VideoGenerator(runtime_paths(tmp_path / "studio"))
    yield gen
    gen.shutdown()


def tiny(**changes) -> JobSpec:
    return JobSpec(**{"prompt": "a lighthouse", "model_set": "tiny", "duration": 1, "fps": 8, "width": 256,
                      "height": 144, "seed": 3, **changes})


def test_a_cancel_that_comes_after_the_video_is_published_keeps_it_recorded(generator, monkeypatch):
    """Case 7: cancel during finish used to leave a `cancelled` job whose MP4 sat in outputs/."""
    from backend.stages import finish as finish_stage

    real = finish_stage.run
    job: list[str] = []

    def cancelled_right_after(ctx, inputs):
        result = real(ctx, inputs)
        generator.cancel(job[0])  # the user presses Cancel just as the file lands
        return result

    monkeypatch.setattr(finish_stage, "run", cancelled_right_after)
    job.append(generator.submit(tiny()))
    status = generator.wait(job[0], timeout=TIMEOUT)
    assert status.state == "done" and Path(status.output).is_file() and Path(status.sidecar).is_file()
    assert any("cancel came after the video was finished" in line for line in status.log)


def test_a_full_disk_under_the_job_database_fails_the_job_instead_of_retrying_forever(generator, monkeypatch):
    """Case 4: "database or disk is full" made the worker retry forever; the job stayed `running`."""
    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(generator.store, "progress", full)
    monkeypatch.setattr(generator.store, "finish", full)
    job_id = generator.submit(tiny(prompt="no room"))
    status = generator.wait(job_id, timeout=TIMEOUT)
    assert status.state == "failed" and status.error.startswith("The disk is full")


def test_a_failed_job_prints_one_line_and_keeps_the_traceback_in_the_log(tmp_path):
    """Case 11: every failed CLI job printed a ~70-line traceback before its one-line error."""
    home = tmp_path / "home"
    code, _, err = finish(cli(home, "generate", "--prompt", "no ffmpeg", *TINY,
                              env={"IMAGEIO_FFMPEG_EXE": str(tmp_path / "missing-ffmpeg")}))
    assert code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] and len(err.splitlines()) <= 3
    log = (runtime_paths(home).state / "logs" / "studio.log").read_text()
    assert "ffmpeg" in log

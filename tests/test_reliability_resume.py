"""Crash safety end to end: ``kill -9`` a tiny CLI job, start the studio again, resume, same video.

Everything runs through the real command line in subprocesses, the way a user's studio dies and
comes back: ``python -m backend generate`` is killed with SIGKILL mid-motion (one segment done,
the next one half made) or mid-encode; ``python -m backend resume <id>`` then finishes the job in a
fresh process. The frames must equal those of an uninterrupted run with the same seed, finished
stages must not run again, and outputs/ must never hold a partial video.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import pytest

from backend.jobs.store import JobStore
from backend.media.video_io import iter_frames
from backend.paths import runtime_paths

REPO = Path(__file__).resolve().parent.parent
PROMPT = "ocean waves crashing on a beach at golden hour"
# Two keyframes gaps → two motion segments, so a kill can land between them.
JOB_ARGS = ["--models", "tiny", "--prompt", PROMPT, "--duration", "2", "--fps", "8", "--size", "256x144",
            "--seed", "41", "--keyframes", "3", "--json"]
TIMEOUT = 300
T = TypeVar("T")


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend", *args], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, STUDIO_HOME=str(home), **(env or {})), timeout=TIMEOUT)


def start_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "backend", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, STUDIO_HOME=str(home), **(env or {})))


def wait_for(find: Callable[[], T | None], proc: subprocess.Popen, what: str) -> T:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        assert proc.poll() is None, f"the job process ended (rc {proc.returncode}) before {what}"
        time.sleep(0.01)
    raise TimeoutError(what)


def kill_9(proc: subprocess.Popen) -> list[int]:
    """SIGKILL the studio process; return the pids of its children (ffmpeg), which outlive it."""
    import psutil

    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return children


def wait_gone(pids: list[int]) -> None:
    import psutil

    psutil.wait_procs([p for p in map(_process, pids) if p is not None], timeout=60)


def _process(pid: int):
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def frames_of(path: str | Path) -> np.ndarray:
    return np.stack(list(iter_frames(Path(path))))


def videos_in(home: Path) -> list[Path]:
    """Every file in outputs/ (the studio's own state folder aside): videos, sidecars, partial copies."""
    outputs = runtime_paths(home).outputs
    return sorted(p for p in outputs.rglob("*") if p.is_file() and ".studio" not in p.relative_to(outputs).parts)


def resume(home: Path, job_id: str) -> dict:
    result = cli(home, "resume", job_id[:8], "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "done" and summary["id"] == job_id
    return summary


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> np.ndarray:
    """Frames of the same job run without interruption, in its own process and home."""
    result = cli(tmp_path_factory.mktemp("reference"), "generate", *JOB_ARGS)
    assert result.returncode == 0, result.stderr[-2000:]
    return frames_of(json.loads(result.stdout.strip().splitlines()[-1])["output"])


def test_kill_9_mid_motion_then_resume_gives_the_identical_video(tmp_path, reference):
    home = tmp_path / "home"
    jobs = runtime_paths(home).temp / "jobs"
    proc = start_cli(home, "generate", *JOB_ARGS)
    first_segment = wait_for(lambda: next(jobs.glob("*/segments/segment_000/segment.json"), None), proc,
                             "the first motion segment was finished")
    kill_9(proc)
    job_id = first_segment.parents[2].name

    # What the crash left: the job still says running, motion never checkpointed, nothing delivered.
    store = JobStore(runtime_paths(home).database)
    assert store.get(job_id).state == "running"
    assert set(store.stages(job_id)) == {"analyze", "keyframes"}, "the kill did not land mid-motion"
    assert videos_in(home) == []

    summary = resume(home, job_id)  # a new process: marks the job interrupted, then resumes it
    record = json.loads(Path(summary["sidecar"]).read_text())
    assert record["attempt"] == 2
    assert record["resume"]["kept_stages"] == ["analyze", "keyframes"]
    assert record["stages"]["keyframes"]["kept"] is True
    assert record["stages"]["keyframes"]["memory_plan"]["level"] == "cpu"  # the first run's record, restored
    assert record["stages"]["motion"]["resumed"].startswith("1 artifact")  # segment 0 was not made again
    assert np.array_equal(frames_of(summary["output"]), reference)
    assert videos_in(home) == sorted([Path(summary["output"]), Path(summary["sidecar"])])
    assert not (jobs / job_id).exists()  # the work folder goes once the job is done


def slow_ffmpeg(tmp_path: Path) -> Path:
    """An ffmpeg that waits before encoding, so the kill lands inside the finishing stage."""
    import imageio_ffmpeg

    script = tmp_path / "slow-ffmpeg"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys, time\n"
        "if any(a.startswith('attempt') for a in sys.argv[1:]):\n"
        "    time.sleep(2)\n"
        f"os.execv({imageio_ffmpeg.get_ffmpeg_exe()!r}, ['ffmpeg', *sys.argv[1:]])\n"
    )
    script.chmod(0o755)
    return script


def test_kill_9_while_encoding_leaves_no_partial_video_and_resume_finishes(tmp_path, reference):
    home = tmp_path / "home"
    jobs = runtime_paths(home).temp / "jobs"
    proc = start_cli(home, "generate", *JOB_ARGS, env={"IMAGEIO_FFMPEG_EXE": str(slow_ffmpeg(tmp_path))})
    encode_log = wait_for(lambda: next(jobs.glob("*/finish/attempt1.log"), None), proc, "encoding started")
    orphans = kill_9(proc)
    job_id = encode_log.parents[1].name
    assert videos_in(home) == []
    wait_gone(orphans)  # ffmpeg finishes its file in the work folder; nothing may move it into outputs/
    assert videos_in(home) == []
    assert set(JobStore(runtime_paths(home).database).stages(job_id)) == {"analyze", "keyframes", "motion",
                                                                          "assemble"}

    summary = resume(home, job_id)
    record = json.loads(Path(summary["sidecar"]).read_text())
    assert record["resume"]["kept_stages"] == ["analyze", "keyframes", "motion", "assemble"]
    assert np.array_equal(frames_of(summary["output"]), reference)
    assert [p.suffix for p in videos_in(home)] == [".json", ".mp4"]

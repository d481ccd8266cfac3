"""Review before motion, end to end through the CLI on the tiny models: the job stops with its keyframes,
one keyframe is redrawn (the others stay byte-identical), the job survives a killed process, and
``continue`` makes a video from the edited storyboard whose record says what was edited."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.tiny, pytest.mark.e2e]

REPO = Path(__file__).resolve().parent.parent
PROMPT = "a paper boat sailing down a rainy street gutter, watercolour"


def cli(*args: str, home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, STUDIO_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "backend", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def board_of(job: str, home: Path) -> dict:
    result = cli("storyboard", job, "--json", home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_review_regenerate_one_keyframe_survive_a_kill_then_continue(tmp_path):
    home = tmp_path / "home"
    made = cli("generate", "--models", "tiny", "--engine", "ltx", "--review", "--prompt", PROMPT, "--keyframes", "3",
               "--duration", "2", "--fps", "8", "--seed", "11", "--size", "256x144", "--json", home=home)
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout.strip().splitlines()[-1])
    assert summary["status"] == "awaiting_review" and summary["output"] is None
    job = summary["id"]

    board = board_of(job, home)
    assert len(board["frames"]) == 3 and len(board["files"]) == 3 and not board["approved"]
    assert [f["time"] for f in board["frames"]] == [0.0, 1.0, 2.0]
    before = [digest(p) for p in board["files"]]

    new_prompt = "the paper boat tips over a small waterfall into a drain, watercolour"
    edited = cli("storyboard", job[:8], "--regenerate", "2", "--prompt", new_prompt, "--new-seed", "--json", home=home)
    assert edited.returncode == 0, edited.stderr
    board = json.loads(edited.stdout.strip().splitlines()[-1])
    after = [digest(p) for p in board["files"]]
    assert after[0] == before[0] and after[2] == before[2], "only keyframe 2 may change"
    assert after[1] != before[1]
    assert board["frames"][1]["prompt"] == new_prompt and board["frames"][1]["image_sha256"] == after[1]
    assert [e["action"] for e in board["edits"]] == ["regenerate"]

    # A process holding the worker is killed while the job waits for review: nothing is lost.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from backend.jobs.orchestrator import VideoGenerator; "
                               "VideoGenerator(); print('ready', flush=True); time.sleep(120)"],
        cwd=REPO, env=dict(os.environ, STUDIO_HOME=str(home)), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert board_of(job, home)["frames"][1]["prompt"] == new_prompt

    done = cli("continue", job[:8], "--json", home=home)
    assert done.returncode == 0, done.stderr
    finished = json.loads(done.stdout.strip().splitlines()[-1])
    assert finished["status"] == "done" and Path(finished["output"]).is_file()
    sidecar = json.loads(Path(finished["sidecar"]).read_text())
    storyboard = sidecar["storyboard"]
    assert storyboard["approved"] and [e["action"] for e in storyboard["edits"]] == ["regenerate", "animate"]
    assert storyboard["frames"][1]["image_sha256"] == after[1]  # the video was made from the edited keyframe
    assert sidecar["stages"]["keyframes"]["prompts"][1] == new_prompt
    motion = sidecar["stages"]["motion"]
    last = round(2 * motion["fps"]) - 1  # the motion clip's last frame (LTX makes its frames at 24 fps)
    assert [c["frame_index"] for c in motion["conditions"]] == [0, round(last / 2), last]  # at 0, 1 and 2 s


def test_a_job_without_review_runs_straight_through_with_its_storyboard_recorded(tmp_path):
    home = tmp_path / "home"
    made = cli("generate", "--models", "tiny", "--engine", "ltx", "--prompt", PROMPT, "--keyframes", "2",
               "--duration", "1", "--fps", "8", "--seed", "3", "--size", "256x144", "--json", home=home)
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout.strip().splitlines()[-1])
    sidecar = json.loads(Path(summary["sidecar"]).read_text())
    assert summary["status"] == "done" and sidecar["storyboard"]["approved"] is True
    assert sidecar["storyboard"]["edits"] == [] or "edits" not in sidecar["storyboard"]
    assert sidecar["stages"]["analyze"]["planner"] == "rules"
    sources = {s["role"]: s for s in sidecar["models"]["sources"]}  # which weights made it
    assert sources["keyframes"]["key"] == "tiny-sdxl" and sources["keyframes"]["tiny"] == "sdxl"
    assert sources["motion"]["key"] == "tiny-ltx"


def test_editing_a_job_that_is_not_waiting_for_review_is_one_clear_line(tmp_path):
    home = tmp_path / "home"
    made = cli("generate", "--models", "tiny", "--engine", "ltx", "--prompt", PROMPT, "--keyframes", "2",
               "--duration", "1", "--fps", "8", "--size", "256x144", "--json", home=home)
    job = json.loads(made.stdout.strip().splitlines()[-1])["id"]
    started = time.monotonic()
    result = cli("storyboard", job, "--regenerate", "1", home=home)
    assert result.returncode != 0 and time.monotonic() - started < 60
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not waiting for review" in lines[0] and "Traceback" not in result.stderr

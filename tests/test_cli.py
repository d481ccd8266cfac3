"""The headless CLI runs jobs through the same orchestrator and fails with one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, STUDIO_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "backend", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


def test_generate_json_prints_the_job_record(tmp_path):
    result = cli("generate", "--models", "tiny", "--prompt", "ocean waves crashing on a beach at golden hour",
                 "--duration", "2", "--fps", "8", "--seed", "7", "--size", "256x144", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["status"] == "done" and record["seed"] == 7 and record["error"] is None
    assert Path(record["output"]).is_file() and Path(record["sidecar"]).is_file()
    assert set(record["stages"]) == {"analyze", "keyframes", "motion", "assemble", "finish"}

    listed = cli("jobs", "--json", home=tmp_path)
    assert json.loads(listed.stdout)[0]["id"] == record["id"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--models", "tiny", "--prompt", ""], "prompt"),
        (["generate", "--models", "tiny", "--prompt", "x", "--duration", "-1"], "duration"),
        (["generate", "--models", "tiny", "--prompt", "x", "--size", "big"], "--size"),
        (["generate", "--models", "tiny", "--prompt", "x", "--mode", "i2v"], "needs an image"),
        (["generate", "--models", "tiny", "--prompt", "x", "--mode", "i2v", "--image", "/no/such.png"], "cannot read"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(tmp_path, args, message):
    result = cli(*args, home=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_non_numeric_arguments_are_rejected_by_the_parser(tmp_path):
    result = cli("generate", "--prompt", "x", "--fps", "fast", home=tmp_path, timeout=60)
    assert result.returncode == 2 and "invalid int value" in result.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("{}", "non-empty JSON list"),
        ('[{"prompt": "x", "wobble": 1}]', "Unknown setting"),
        ('[{"prompt": "x", "duration": "long"}]', "must be a number"),
    ],
)
def test_bad_manifests_are_rejected_before_anything_runs(tmp_path, content, message):
    manifest = tmp_path / "batch.json"
    manifest.write_text(content)
    result = cli("generate", "--manifest", str(manifest), home=tmp_path, timeout=120)
    assert result.returncode == 2 and message in result.stderr


def test_the_command_runs_from_any_directory(tmp_path):
    """setup.py links the project into its environment, so `python -m backend` needs no `cd` first."""
    result = subprocess.run([sys.executable, "-m", "backend", "analyze", "a red kite over a beach", "--json"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env=dict(os.environ, STUDIO_HOME=str(tmp_path / "home"), PYTHONPATH=""))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["analysis"]["subject"] == "red kite"

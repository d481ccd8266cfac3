"""test_system.py runs on a machine without a GPU and reports it as a warning, not a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def doctor(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, STUDIO_HOME=str(home))
    return subprocess.run([sys.executable, "test_system.py", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=300)


def test_json_report_with_smoke_run(tmp_path):
    result = doctor("--json", home=tmp_path)
    report = json.loads(result.stdout)
    by_name = {c["name"]: c for c in report["checks"]}
    assert result.returncode == 0 and report["ok"] is True, result.stdout
    assert by_name["python"]["status"] == "OK"
    assert by_name["package diffusers"]["detail"] == "0.42.1"
    assert by_name["ffmpeg libx264"]["status"] == "OK"
    assert by_name["smoke run (tiny models)"]["status"] == "OK"
    gpu = by_name["gpu"]
    if gpu["status"] != "OK":  # CI has no GPU: a warning with a hint, never a crash
        assert gpu["status"] == "WARN" and gpu["hint"]
    assert all(c["status"] in ("OK", "WARN", "FAIL") for c in report["checks"])


def test_unwritable_runtime_folder_fails_with_a_hint(tmp_path):
    home = tmp_path / "home"
    (home / "outputs").mkdir(parents=True)
    (home / "outputs").chmod(0o500)
    try:
        if os.access(home / "outputs", os.W_OK):  # root ignores permissions: use a file in the way instead
            (home / "outputs").chmod(0o700)
            (home / "outputs").rmdir()
            (home / "outputs").write_text("not a folder")
        result = doctor("--json", "--quick", home=home)
    finally:
        if (home / "outputs").is_dir():
            (home / "outputs").chmod(0o700)
    report = json.loads(result.stdout)
    failing = [c for c in report["checks"] if c["status"] == "FAIL"]
    assert result.returncode == 1 and report["ok"] is False
    assert any(c["name"] == "folder outputs" and c["hint"] for c in failing)

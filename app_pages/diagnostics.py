"""The diagnostics report: runs test_system.py as a child process and shows what it found."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import streamlit as st

from app_pages.common import plain

log = logging.getLogger("studio.ui")

DIAGNOSTICS = Path(__file__).resolve().parent.parent / "test_system.py"
DIAGNOSTICS_TIMEOUT_S = 300


def run_diagnostics(script: Path = DIAGNOSTICS, timeout: float = DIAGNOSTICS_TIMEOUT_S) -> dict[str, Any]:
    """Run ``script --json --quick`` in a child process (argument list, no shell); return its report."""
    if not script.is_file():
        return {"error": "The diagnostics script (test_system.py) is not installed in this copy of the studio."}
    try:
        done = subprocess.run([sys.executable, str(script), "--json", "--quick"], capture_output=True,
                              text=True, timeout=timeout, cwd=script.parent, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"The diagnostics did not finish within {timeout:g} s."}
    except OSError as exc:
        return {"error": f"The diagnostics could not start: {exc}."}
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    except ValueError:
        report = None
    if not isinstance(report, dict):
        log.warning("diagnostics exit %s; stderr: %s", done.returncode, done.stderr[-2000:])
        return {"error": f"The diagnostics ended (exit code {done.returncode}) without a report; "
                         "run ./launch.sh doctor in a terminal to see why."}
    return report


def show_report(report: dict[str, Any]) -> None:
    if report.get("error"):
        st.error(plain(report["error"]))
        return
    checks = [c for c in report.get("checks", []) if isinstance(c, dict)]
    problems = [c for c in checks if c.get("status") != "OK"]
    failed = sum(1 for c in problems if c.get("status") == "FAIL")
    if not report.get("ok") or failed:
        st.error("This machine cannot generate yet: fix the FAIL lines.")
    elif problems:  # the banner never looks all-clear above warnings
        st.warning(f"This machine can generate, with {len(problems)} warning{'s' if len(problems) != 1 else ''} "
                   "below: each says what it costs and how to fix it.")
    else:
        st.success("This machine can generate: every check passed.")
    for check in problems:
        show = st.error if check.get("status") == "FAIL" else st.warning
        show(plain(f"{check.get('name')}: {check.get('detail')}" + (f" → {check['hint']}" if check.get("hint")
                                                                     else "")))
    rows = [{"check": str(c.get("name", "")), "status": str(c.get("status", "")),
             "detail": str(c.get("detail", "")), "hint": str(c.get("hint", ""))} for c in checks]
    st.dataframe(rows, hide_index=True, width="stretch")

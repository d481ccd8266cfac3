"""`python -m backend analyze`: the issue's done-when, run as a user runs it (a subprocess, offline)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backend.cli.analyze import describe
from backend.prompting import plan_shot

pytestmark = pytest.mark.e2e  # subprocesses; the in-process test is also marked unit

REPO = Path(__file__).resolve().parents[1]
DRAGON = "a dragon made of smoke uncoiling above a burning castle, oil painting, not at night"


def analyze(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "backend", "analyze", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_done_when_a_smoke_dragon_in_four_keyframes_and_never_at_night():
    done = analyze(DRAGON, "--keyframes", "4", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    analysis = plan["analysis"]
    assert analysis["subject"] == "dragon made of smoke"
    assert analysis["lighting"] != "night"
    assert "night" in analysis["negative_prompt"].split(", ")
    assert not re.search(r"\bnight\b", analysis["enhanced_prompt"])
    prompts = [k["prompt"] for k in plan["keyframes"]]
    assert len(prompts) == 4 and len(set(prompts)) == 4
    assert all(not re.search(r"\bnight\b", p) for p in prompts + plan["segment_prompts"])
    # The prompts differ in the action's progress, not in anything else.
    progress = [p.split(", above a burning castle")[0] for p in prompts]
    assert progress == ["dragon made of smoke beginning to uncoil", "dragon made of smoke uncoiling, partly uncoiled",
                        "dragon made of smoke mostly uncoiled, still uncoiling", "dragon made of smoke fully uncoiled"]
    assert [k["time"] for k in plan["keyframes"]] == [0.0, 1.333, 2.667, 4.0]
    assert plan["planner"] == "rules" and plan["fallback"] is None
    assert {"subject", "setting", "action", "style", "lighting", "camera"} <= set(analysis)


def test_readable_text_without_json():
    done = analyze("two astronauts shake hands", "--keyframes", "3", "--duration", "6")
    assert done.returncode == 0, done.stderr
    assert "Action:    shaking hands" in done.stdout and "Planner:   rules" in done.stdout
    assert "  6.00 s  two astronauts having shaken hands" in done.stdout
    assert "3.00-6.00 s" in done.stdout


@pytest.mark.tiny
def test_the_llm_planner_on_the_tiny_model_falls_back_and_says_so():
    done = analyze("ocean waves crashing at dusk", "--planner", "llm", "--models", "tiny", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["planner"] == "rules" and "not valid JSON" in plan["fallback"]


@pytest.mark.parametrize("args, message", [
    (["", "--json"], "the prompt is empty"),
    (["a cat", "--keyframes", "0"], "'keyframes' must be between 1 and 16"),
    (["a cat", "--duration", "-2"], "duration"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    done = analyze(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and message in done.stderr and len(done.stderr.splitlines()) == 1


@pytest.mark.unit
def test_the_text_shows_the_fallback_reason_under_the_planner():
    plan = plan_shot("a cat", keyframes=1, duration=2.0)
    lines = describe(plan.__class__(plan.analysis, plan.keyframes, plan.segment_prompts, "rules", "why not"))
    assert lines[:2] == ["Planner:   rules", "           (why not)"]
    assert any(line.strip().startswith("whole shot") for line in lines)

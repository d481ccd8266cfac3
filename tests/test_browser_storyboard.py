"""Real browser: a job waiting for review opens in the storyboard editor; regenerate keyframe 2 with a new
prompt, Animate, and the finished video plays. The job is made on the tiny models through the CLI on the
same studio folder (the server's worker or the CLI's own runs it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, JOB_S, server, sync_api  # noqa: F401 - fixture
from ui_support import REPO_ROOT, SHARED_MODELS

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PROMPT = "a lighthouse on a cliff as a storm rolls in, oil painting"
NEW_PROMPT = "the lighthouse beam cutting through heavy rain, waves breaking on the rocks"


def _job_waiting_for_review(home: Path) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STUDIO_HOME": str(home)}
    env.setdefault("STUDIO_MODELS_DIR", str(SHARED_MODELS))
    made = subprocess.run(
        [sys.executable, "-m", "backend", "generate", "--models", "tiny", "--engine", "ltx", "--review", "--prompt",
         PROMPT, "--keyframes", "3", "--duration", "2", "--fps", "8", "--seed", "21", "--size", "256x144", "--json"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=JOB_S)
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout.strip().splitlines()[-1])
    assert summary["status"] == "awaiting_review"
    return summary["id"]


def test_edit_the_storyboard_then_animate_in_a_real_browser(server: str, tmp_path: Path) -> None:  # noqa: F811
    job_id = _job_waiting_for_review(tmp_path / "studio")  # the server fixture's STUDIO_HOME
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1600},
        )
        page = browser.new_page()
        try:
            page.goto(f"{server}/job?job={job_id}", wait_until="domcontentloaded")
            page.get_by_text("The keyframes are ready", exact=False).wait_for(timeout=60_000)
            page.get_by_role("button", name="Animate").wait_for(timeout=60_000)  # the editor is drawn last
            prompts = page.get_by_label("Prompt", exact=True)
            assert prompts.count() == 3
            page.screenshot(path=str(ARTIFACTS / "browser-storyboard-review.png"), full_page=True)
            second = prompts.nth(1)
            second.fill(NEW_PROMPT)
            second.press("Control+Enter")
            page.wait_for_timeout(800)
            page.get_by_text("New seed", exact=True).nth(1).click()
            page.wait_for_timeout(800)
            page.get_by_role("button", name="Regenerate").nth(1).click()
            ready = page.get_by_text("The keyframes are ready", exact=False)
            ready.wait_for(state="detached", timeout=60_000)  # the live view while keyframe 2 is drawn

            # The job is queued, draws keyframe 2 again and comes back to the editor with the new prompt.
            page.get_by_role("button", name="Animate").wait_for(timeout=JOB_S * 1000)
            assert page.get_by_label("Prompt", exact=True).nth(1).input_value() == NEW_PROMPT
            page.get_by_role("button", name="Animate").click()

            page.get_by_text(re.compile("^Done in")).wait_for(timeout=JOB_S * 1000)  # not a segment preview
            page.locator("video").first.wait_for(timeout=60_000)  # drawn just after the "Done in" line
            assert page.locator("video").count() == 1
            page.wait_for_function(
                "() => { const v = document.querySelector('video');"
                " return v && v.readyState >= 1 && v.duration > 0; }", timeout=60_000)
            played = page.evaluate(
                """async () => {
                    const v = document.querySelector('video');
                    v.muted = true;
                    await v.play();
                    await new Promise(r => setTimeout(r, 1200));
                    return {time: v.currentTime, duration: v.duration, error: v.error ? v.error.code : null};
                }""")
            assert played["error"] is None and played["time"] > 0, played
            page.screenshot(path=str(ARTIFACTS / "browser-storyboard-animated.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "browser-storyboard-failure.png"), full_page=True)
            raise
        finally:
            browser.close()

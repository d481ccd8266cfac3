"""Real-browser tests: the studio server on a free loopback port, driven by headless Chromium.

Type a prompt, pick the test models (output is noise), Generate, wait for the video element and
check it really plays; and the Create form keeping what the user set where timing matters (a page
switch right after the live panel polled). Screenshots are kept in test-artifacts/. Uses Debian's
chromium through Playwright (Playwright's own browser download is not needed); ``chromium_page``
opens a page for any browser test.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from ui_support import REPO_ROOT, SHARED_MODELS

CHROMIUM = os.environ.get("STUDIO_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = REPO_ROOT / "test-artifacts"
SERVER_START_S = 90
JOB_S = 240
PROMPT = "ocean waves crashing on a beach at golden hour"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test requirement")
if not shutil.which(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"the server did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STUDIO_HOME": str(tmp_path / "studio"),
           "STUDIO_LOG_FILE": str(tmp_path / "studio.log")}
    env.setdefault("STUDIO_MODELS_DIR", str(SHARED_MODELS))
    log = tmp_path / "server.out"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app.py"), "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def chromium_page(profile: Path, failure_shot: str, height: int = 1400) -> Iterator:  # -> playwright Page
    """A page in headless Chromium; a full-page screenshot goes to test-artifacts/ when the test fails."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": height},
        )
        page = browser.new_page()
        try:
            yield page
        except Exception:
            page.screenshot(path=str(ARTIFACTS / failure_shot), full_page=True)
            raise
        finally:
            browser.close()


def play_video(page) -> dict:  # page: playwright Page
    """Wait until the page's first <video> has loaded, play it muted for 1.2 s; what it reports then."""
    page.wait_for_function(
        "() => { const v = document.querySelector('video');"
        " return v && v.readyState >= 1 && v.duration > 0; }", timeout=60_000)
    return page.evaluate(
        """async () => {
            const v = document.querySelector('video');
            v.muted = true;
            await v.play();
            await new Promise(r => setTimeout(r, 1200));
            return {time: v.currentTime, duration: v.duration, ready: v.readyState,
                    error: v.error ? v.error.code : null};
        }""")


def test_generate_a_tiny_video_in_a_real_browser(server: str, tmp_path: Path) -> None:
    with chromium_page(tmp_path / "chromium-profile", "browser-failure.png") as page:
        page.goto(server, wait_until="domcontentloaded")
        prompt = page.get_by_label("Prompt", exact=True)
        prompt.wait_for(timeout=60_000)
        page.get_by_text("Test models — output is noise", exact=True).click()  # click 1
        page.get_by_text("Use them to try the studio", exact=False).wait_for(timeout=30_000)
        prompt.fill(PROMPT)
        prompt.press("Control+Enter")  # Streamlit commits a text area on Ctrl+Enter or blur
        page.get_by_text("photoreal", exact=True).wait_for(timeout=30_000)  # the live prompt analysis
        generate = page.get_by_role("button", name=re.compile("Generate"))
        page.get_by_text("Estimated peak VRAM").wait_for(timeout=30_000)
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)  # the plan per stage
        generate.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-create-preflight.png"))
        generate.click()  # click 2

        page.get_by_role("heading", name="Live job").wait_for(timeout=60_000)
        assert re.search(r"[?&]job=[0-9a-f]{32}", page.url), page.url  # a refresh reopens this job
        video = page.locator("video")
        done = page.get_by_text(re.compile("^Done in"))  # the finished view (segment previews are videos too)
        ended = done.or_(page.get_by_role("button", name=re.compile("Resume|Run again")))  # or failed/cancelled
        ended.first.wait_for(timeout=JOB_S * 1000)
        if done.count():  # the video element follows the "Done in" line as the page finishes drawing
            video.first.wait_for(timeout=60_000)
        assert video.count() == 1, page.locator('[data-testid="stAlert"]').all_inner_texts()
        played = play_video(page)
        assert played["error"] is None and played["duration"] > 1.5, played
        assert played["time"] > 0, played  # H.264 decodes and advances in the browser
        assert page.locator('img[src*="/media/"]').count() >= 2  # the storyboard keyframes
        page.screenshot(path=str(ARTIFACTS / "browser-finished-job.png"))


def test_the_create_form_keeps_what_the_user_set(server: str, tmp_path: Path) -> None:
    """/create opens Create; switching to the test models keeps open expanders and the user's duration; after
    Generate, going straight back to Create (once the live panel has polled) finds the prompt and settings."""
    with chromium_page(tmp_path / "chromium-profile", "browser-create-failure.png", height=1600) as page:
        page.goto(f"{server}/create", wait_until="domcontentloaded")
        prompt = page.get_by_label("Prompt", exact=True)
        prompt.wait_for(timeout=60_000)
        assert page.get_by_text("Page not found").count() == 0 and page.url.endswith("/create"), page.url

        duration = page.get_by_role("spinbutton", name="Duration (s)")
        guidance = page.get_by_role("spinbutton", name="Guidance")
        duration.fill("3.5")
        duration.press("Enter")
        page.get_by_text("Advanced", exact=True).click()
        guidance.wait_for(state="visible", timeout=10_000)
        guidance.fill("6.5")
        guidance.press("Enter")
        page.wait_for_timeout(1000)  # the rerun of each commit
        page.get_by_text("Test models — output is noise", exact=True).click()
        page.get_by_text("Use them to try the studio", exact=False).wait_for(timeout=30_000)
        page.wait_for_timeout(1000)
        assert guidance.is_visible(), "switching the models closed the Advanced expander"
        assert duration.input_value() == "3.50", "switching the models overwrote the duration the user set"
        size = page.locator('[data-testid="stSelectbox"]').filter(has_text="Output size")
        assert "256×144" in size.locator("input").first.input_value()  # a default, which the switch may change

        prompt.fill(PROMPT)
        prompt.press("Control+Enter")
        page.get_by_text("Estimated peak VRAM").wait_for(timeout=30_000)
        page.get_by_role("button", name=re.compile("Generate")).click()
        page.get_by_role("heading", name="Live job").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)  # the live panel's fragment has polled at least once
        page.get_by_role("link", name="Create").click()
        page.get_by_role("heading", name="Create").wait_for(timeout=60_000)
        page.get_by_text("Estimated peak VRAM").or_(page.get_by_text("prompt is empty")).first.wait_for(
            timeout=30_000)
        assert page.get_by_label("Prompt", exact=True).input_value() == PROMPT
        page.get_by_text("Advanced", exact=True).click()
        assert duration.input_value() == "3.50" and guidance.input_value() == "6.50"
        assert page.get_by_role("radio", name="Test models — output is noise").is_checked()
        page.screenshot(path=str(ARTIFACTS / "browser-create-kept.png"), full_page=True)

        page.goto(server, wait_until="domcontentloaded")  # the root opens Create at /create
        page.get_by_role("heading", name="Create").wait_for(timeout=60_000)
        page.wait_for_url(re.compile(r"/create$"), timeout=30_000)

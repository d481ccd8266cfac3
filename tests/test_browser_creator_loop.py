"""Real-browser tests of the creator's loop on the tiny models (Chromium through Playwright, as test_browser.py).

Segment previews play on the Live job page while motion still runs; "Variations: 3 seeds" queues three jobs as a
group, each with its own seed, and Compare plays two of them in sync (the player is our own components.v2
component: its videos and buttons sit in a shadow root). Screenshots of Create, the Live job page with segment
previews and the Compare player go to test-artifacts/; docs/screenshots/ holds copies taken once.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_browser import ARTIFACTS, JOB_S, PROMPT, chromium_page, play_video, server  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

VARIATIONS = 3
LIVE_DURATION_S = "4"  # tiny LTX makes 4 segments of it
HOLD_S = 20  # at most this long with the store held (the worker's busy timeout is 30 s)
# Every <video> under the Compare player's shadow root, as numbers (Playwright's CSS locators pierce it too).
_PLAYER_VIDEOS = """() => {
    const found = [];
    const walk = (root) => {
        root.querySelectorAll('.studio-compare video').forEach((v) => found.push(v));
        root.querySelectorAll('*').forEach((el) => { if (el.shadowRoot) { walk(el.shadowRoot); } });
    };
    walk(document);
    return found.map((v) => ({time: v.currentTime, duration: v.duration, ready: v.readyState, paused: v.paused,
                              error: v.error ? v.error.code : null}));
}"""


def _store(tmp_path: Path):  # the server's job store (STUDIO_HOME = tmp_path/studio, see test_browser.server)
    from backend.jobs.store import JobStore
    from backend.paths import runtime_paths

    return JobStore(runtime_paths(tmp_path / "studio").database)


def _create_form(page, server_url: str) -> None:
    """/create with the test models and the prompt typed in, once the pre-flight has answered."""
    page.goto(f"{server_url}/create", wait_until="domcontentloaded")
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.wait_for(timeout=60_000)
    page.get_by_text("Test models — output is noise", exact=True).click()
    page.get_by_text("Use them to try the studio", exact=False).wait_for(timeout=30_000)
    prompt.fill(PROMPT)
    prompt.press("Control+Enter")  # Streamlit commits a text area on Ctrl+Enter or blur
    page.get_by_text("Estimated peak VRAM").wait_for(timeout=30_000)
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)


def _first_preview(tmp_path: Path, timeout_s: float) -> Path:
    """The first segment preview the server's worker makes, as soon as it is there."""
    jobs = tmp_path / "studio" / "temp" / "jobs"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = list(jobs.glob("*/segments/segment_000/preview_of_*.mp4"))
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no segment preview within {timeout_s} s")


@contextmanager
def _store_held(tmp_path: Path) -> Iterator[None]:
    """Hold the job database's write lock, as another process writing to it would, for a few seconds: the worker
    waits at its next progress write (SQLite's busy timeout is 30 s) while the pages go on reading."""
    from backend.paths import runtime_paths

    db = sqlite3.connect(runtime_paths(tmp_path / "studio").database, timeout=10, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        yield
        assert time.monotonic() - started < HOLD_S, "held the store too long: the worker's write would time out"
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()


def _player(page) -> list[dict]:
    return page.evaluate(_PLAYER_VIDEOS)


def _wait_player(page, count: int, timeout_s: float) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        videos = _player(page)
        if len(videos) >= count and all(v["ready"] >= 1 and v["duration"] > 0 for v in videos):  # fast jobs: all
            return videos
        if time.monotonic() > deadline:
            raise AssertionError(f"the player has {videos}, not {count} loaded videos")
        page.wait_for_timeout(500)


def test_segment_previews_play_on_the_live_job_page_while_motion_runs(server: str, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    with chromium_page(tmp_path / "chromium-profile", "browser-live-segments-failure.png") as page:
        _create_form(page, server)
        page.screenshot(path=str(ARTIFACTS / "browser-create-form.png"))
        duration = page.get_by_role("spinbutton", name="Duration (s)")
        duration.fill(LIVE_DURATION_S)
        duration.press("Enter")
        page.wait_for_timeout(1000)  # the rerun of the commit
        page.get_by_role("button", name=re.compile("Generate")).click()

        page.get_by_role("heading", name="Live job").wait_for(timeout=60_000)
        _first_preview(tmp_path, JOB_S)
        with _store_held(tmp_path):  # the job cannot end meanwhile, however fast the tiny models are
            segment = page.get_by_text(re.compile(r"^Segment 1/\d+$"))
            segment.wait_for(timeout=10_000)  # the panel polls once a second
            assert page.get_by_role("button", name=re.compile("Cancel")).is_visible()  # still the live panel
            assert page.get_by_text("Animating between keyframes", exact=False).is_visible()
            assert int(segment.inner_text().rpartition("/")[2]) >= 3
            played = play_video(page)  # the first <video> on the live panel: segment 1's preview
            assert played["error"] is None and played["duration"] > 0.2 and played["time"] > 0, played
            page.screenshot(path=str(ARTIFACTS / "browser-live-job-segments.png"), full_page=True)

        page.get_by_text(re.compile("^Done in")).wait_for(timeout=JOB_S * 1000)
        # the finished video alone (the work folder and its previews went); drawn just after "Done in"
        page.wait_for_function("() => document.querySelectorAll('video').length === 1", timeout=60_000)


def test_three_seed_variations_are_grouped_and_two_play_in_sync(server: str, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    from backend.jobs.variations import group_members

    with chromium_page(tmp_path / "chromium-profile", "browser-variations-failure.png", height=1200) as page:
        _create_form(page, server)
        page.get_by_text("Variations: several versions at once", exact=True).click()
        count = page.get_by_role("spinbutton", name="How many")
        count.wait_for(timeout=10_000)
        assert count.input_value() == str(VARIATIONS)  # "Seed: consecutive", three of them: the defaults
        vary = page.locator('[data-testid="stSelectbox"]').filter(has_text="Vary").locator("input").first
        assert "Seed: consecutive" in vary.input_value()
        page.get_by_role("button", name=re.compile("Generate variations")).click()

        page.wait_for_url(re.compile(r"/compare\?group=[0-9a-f]{32}"), timeout=60_000)
        group_id = re.search(r"group=([0-9a-f]{32})", page.url).group(1)
        page.get_by_text(f"Variations of seed: {VARIATIONS} video(s) queued together.").wait_for(timeout=30_000)
        store = _store(tmp_path)
        members = group_members(store, group_id)
        seeds = [store.get(m.job_id).spec["seed"] for m in members]
        assert len(members) == VARIATIONS and len(set(seeds)) == VARIATIONS, seeds
        assert seeds == list(range(seeds[0], seeds[0] + VARIATIONS))  # consecutive from the form's seed
        assert [m.label for m in members] == [f"seed {s}" for s in seeds]
        assert {store.get(m.job_id).spec["prompt"] for m in members} == {PROMPT}  # only the seed differs

        _wait_player(page, 2, VARIATIONS * JOB_S)  # two finished: they join the player on the group's page
        deadline = time.monotonic() + JOB_S
        while any(store.get(m.job_id).state != "done" for m in members):
            assert time.monotonic() < deadline, [store.get(m.job_id).state for m in members]
            time.sleep(1)

        first, second = members[0].job_id, members[1].job_id
        page.goto(f"{server}/compare?jobs={first},{second}", wait_until="domcontentloaded")
        videos = _wait_player(page, 2, 60)
        assert all(v["error"] is None and v["paused"] for v in videos), videos
        page.get_by_role("button", name="Play", exact=True).click()
        page.wait_for_timeout(1200)
        playing = _player(page)
        assert all(not v["paused"] and v["time"] > 0.3 for v in playing), playing
        assert abs(playing[0]["time"] - playing[1]["time"]) < 0.25, playing  # one clock for both
        page.get_by_role("button", name="Pause", exact=True).click()
        paused = _player(page)
        assert all(v["paused"] for v in paused) and abs(paused[0]["time"] - paused[1]["time"]) < 0.05, paused
        page.get_by_role("button", name="Restart", exact=True).click()
        page.wait_for_timeout(300)
        again = _player(page)
        assert all(not v["paused"] and v["time"] < playing[0]["time"] for v in again), again
        page.screenshot(path=str(ARTIFACTS / "browser-compare-variations.png"))

"""Videos played in sync, side by side or as an A/B wipe: a small component of our own markup.

The markup, style and script below are constants (no text from a user or a job is ever put into
them). The videos reach the component as data (``data=``, JSON), each a ``data:video/mp4;base64,``
URI of a finished MP4 read from inside outputs/ (capped in size); the script checks each one has that
form and assigns it to ``video.src``. The only labels it draws are the letters A, B, C... it is given;
prompts and settings are shown by the page with ordinary Streamlit elements.
"""

from __future__ import annotations

import base64
import string
from pathlib import Path

import streamlit as st

MAX_VIDEO_BYTES = 24 * 2**20  # larger files play on their own (a data: URI travels in the page's websocket)
MAX_TOTAL_BYTES = 64 * 2**20
MAX_VIDEOS = 6
LETTERS = string.ascii_uppercase

_HTML = '<div class="studio-compare" data-ready="0"></div>'

_CSS = """
.studio-compare { font-family: sans-serif; }
.studio-compare .side { display: grid; gap: 8px; }
.studio-compare figure { margin: 0; position: relative; }
.studio-compare video { width: 100%; display: block; background: #000; border-radius: 4px; }
.studio-compare figcaption { position: absolute; top: 6px; left: 6px; padding: 1px 8px; border-radius: 4px;
  background: rgba(0, 0, 0, 0.65); color: #fff; font-weight: bold; }
.studio-compare .wipe { position: relative; max-width: 960px; }
.studio-compare .wipe figure + figure { position: absolute; inset: 0; }
.studio-compare .wipe figure + figure figcaption { left: auto; right: 6px; }
.studio-compare .line { position: absolute; top: 0; bottom: 0; width: 2px; background: #fff; pointer-events: none; }
.studio-compare .bar { display: flex; gap: 8px; align-items: center; margin-top: 6px; }
.studio-compare .bar input[type=range] { flex: 1; }
.studio-compare button { padding: 2px 12px; }
"""

_JS = r"""
export default function (component) {
  const { data, parentElement } = component;
  const root = parentElement.querySelector(".studio-compare");
  if (!root || !data || !Array.isArray(data.videos)) { return; }
  root.replaceChildren();
  const valid = /^data:video\/mp4;base64,[A-Za-z0-9+/=]+$/;
  let sources = data.videos.filter((v) => v && typeof v.src === "string" && valid.test(v.src));
  const wipe = data.mode === "wipe" && sources.length >= 2;
  if (wipe) { sources = sources.slice(0, 2); }
  const stage = document.createElement("div");
  stage.className = wipe ? "wipe" : "side";
  if (!wipe) { stage.style.gridTemplateColumns = `repeat(${Math.min(Math.max(sources.length, 1), 3)}, 1fr)`; }
  const videos = sources.map((source) => {
    const figure = document.createElement("figure");
    const video = document.createElement("video");
    video.muted = true; video.playsInline = true; video.preload = "auto";
    video.src = source.src;
    const tag = document.createElement("figcaption");
    tag.textContent = String(source.letter || "").slice(0, 2);
    figure.append(video, tag);
    stage.append(figure);
    return video;
  });
  const line = document.createElement("div");
  if (wipe) { line.className = "line"; stage.append(line); }
  const bar = document.createElement("div");
  bar.className = "bar";
  const play = document.createElement("button");
  play.textContent = "Play";
  const restart = document.createElement("button");
  restart.textContent = "Restart";
  const seek = Object.assign(document.createElement("input"), { type: "range", min: 0, max: 1000, value: 0 });
  seek.title = "Position";
  const clock = document.createElement("span");
  bar.append(play, restart, seek, clock);
  const split = Object.assign(document.createElement("input"), { type: "range", min: 0, max: 100, value: 50 });
  if (wipe) {
    const named = document.createElement("span");
    named.textContent = "A | B";
    split.title = "A/B split";
    bar.append(named, split);
  }
  root.append(stage, bar);

  const longest = () => videos.reduce((a, b) => ((b.duration || 0) > (a.duration || 0) ? b : a), videos[0]);
  const fmt = (t) => (Number.isFinite(t) ? t.toFixed(1) : "0.0");
  let raf = 0;
  let playing = false;
  const align = (time, tolerance) => {
    for (const v of videos) {
      const target = Math.min(time, Math.max(0, (v.duration || 0) - 0.05));
      if (Number.isFinite(target) && Math.abs(v.currentTime - target) > tolerance) { v.currentTime = target; }
    }
  };
  const draw = () => {
    const lead = longest();
    if (lead && lead.duration) {
      seek.value = String(Math.round((lead.currentTime / lead.duration) * 1000));
      clock.textContent = `${fmt(lead.currentTime)} / ${fmt(lead.duration)} s`;
    }
    if (wipe) {
      const pct = Number(split.value);
      videos[1].parentElement.style.clipPath = `inset(0 0 0 ${pct}%)`;
      line.style.left = `${pct}%`;
    }
  };
  const tick = () => {
    const lead = longest();
    if (playing && lead) {
      align(lead.currentTime, 0.08);
      if (lead.ended) { stop(); }
    }
    draw();
    raf = playing ? requestAnimationFrame(tick) : 0;
  };
  const start = () => {
    const lead = longest();
    if (lead && lead.ended) { align(0, 0); }
    playing = true; play.textContent = "Pause"; root.dataset.playing = "1";
    videos.forEach((v) => { if (v.currentTime < (v.duration || Infinity) - 0.05) { v.play().catch(() => {}); } });
    if (!raf) { raf = requestAnimationFrame(tick); }
  };
  const stop = () => {
    playing = false; play.textContent = "Play"; root.dataset.playing = "0";
    videos.forEach((v) => v.pause());
    const lead = longest();
    if (lead) { align(lead.currentTime, 0.01); }
    draw();
  };
  play.addEventListener("click", () => (playing ? stop() : start()));
  restart.addEventListener("click", () => { align(0, 0); start(); });
  seek.addEventListener("input", () => {
    const lead = longest();
    if (lead && lead.duration) { align((Number(seek.value) / 1000) * lead.duration, 0.01); draw(); }
  });
  split.addEventListener("input", draw);
  videos.forEach((v) => v.addEventListener("loadedmetadata", draw));
  root.dataset.ready = "1";
  draw();
  return () => { playing = false; if (raf) { cancelAnimationFrame(raf); } videos.forEach((v) => v.pause()); };
}
"""

_player = st.components.v2.component("studio_sync_player", html=_HTML, css=_CSS, js=_JS)


@st.cache_data(max_entries=2 * MAX_VIDEOS, show_spinner=False)
def _data_uri(path: str, size: int, mtime_ns: int, outputs: str) -> str:
    """The file as a data: URI (cached by path, size and time; read again, inside outputs/, when it changes)."""
    from backend.media.safe_files import read_inside

    return "data:video/mp4;base64," + base64.b64encode(read_inside(Path(path), Path(outputs))).decode("ascii")


def playable(files: list[Path]) -> tuple[list[int], list[int]]:
    """Which of ``files`` (indexes) go into the synced player, and which are too large for it."""
    fitting, too_large, total = [], [], 0
    for index, path in enumerate(files):
        size = path.stat().st_size
        if size > MAX_VIDEO_BYTES or total + size > MAX_TOTAL_BYTES or len(fitting) >= MAX_VIDEOS:
            too_large.append(index)
        else:
            fitting.append(index)
            total += size
    return fitting, too_large


def sync_player(files: list[Path], letters: list[str], outputs: Path, *, wipe: bool, key: str) -> None:
    """Play ``files`` (already resolved inside ``outputs``) in sync; ``letters`` label them (A, B...)."""
    videos = []
    for path, letter in zip(files, letters):
        stat = path.stat()
        videos.append({"letter": letter if letter in LETTERS else "", "src": _data_uri(
            str(path), stat.st_size, stat.st_mtime_ns, str(outputs))})
    _player(key=key, data={"mode": "wipe" if wipe else "side", "videos": videos})

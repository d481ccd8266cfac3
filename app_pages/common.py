"""Shared UI helpers: the one orchestrator per process, safe file access, formatting, errors.

Nothing here imports torch or runs model work; the orchestrator's worker thread does that.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from backend.paths import runtime_paths

if TYPE_CHECKING:
    from backend.jobs.orchestrator import JobStatus, VideoGenerator

log = logging.getLogger("studio.ui")

TINY_LABEL = "Test models — output is noise"
JOB_ID = re.compile(r"[0-9a-f]{32}")  # the orchestrator's ids (uuid4 hex); anything else is ignored
WORKER_RETRY_S = 30.0

PAGE_CREATE = "app_pages/create.py"
PAGE_JOB = "app_pages/live_job.py"
PAGE_QUEUE = "app_pages/job_queue.py"
PAGE_GALLERY = "app_pages/gallery.py"
PAGE_COMPARE = "app_pages/compare.py"
PAGE_MODELS = "app_pages/models.py"
PAGE_SYSTEM = "app_pages/system.py"


# --- the orchestrator singleton ------------------------------------------------------------
# Streamlit re-imports every module under the app folder when a source file changes, and
# st.cache_resource.clear() drops cached objects; either would otherwise start a second GPU worker.
# So the orchestrators live in a synthetic module (no __file__, never reloaded) keyed by the runtime
# folder they serve. dict.setdefault on sys.modules is atomic, so two sessions cannot race here.
_HOLDER = "_studio_orchestrators"


def process_state() -> types.ModuleType:
    holder = sys.modules.get(_HOLDER)
    if holder is None:
        fresh = types.ModuleType(_HOLDER, "Process-wide VideoGenerator instances (see app_pages/common.py).")
        fresh.lock = threading.Lock()
        fresh.generators = {}
        fresh.last_start_try = {}
        holder = sys.modules.setdefault(_HOLDER, fresh)
    return holder


def _key() -> str:
    paths = runtime_paths()
    return f"{paths.root}|{paths.models}"


def generator() -> "VideoGenerator":
    """The process's orchestrator for the current runtime folder (created on first use)."""
    from backend.jobs.orchestrator import VideoGenerator

    holder = process_state()
    key = _key()
    with holder.lock:
        gen = holder.generators.get(key)
        if gen is None:
            log.info("starting the studio orchestrator for %s", key)
            gen = VideoGenerator(runtime_paths())
            holder.generators[key] = gen
            holder.last_start_try[key] = time.monotonic()
        elif not gen.has_worker and time.monotonic() - holder.last_start_try.get(key, 0.0) > WORKER_RETRY_S:
            # Another process (e.g. the CLI) held the worker lock; take over once it has gone.
            holder.last_start_try[key] = time.monotonic()
            gen.start()
    return gen


def shutdown_generators(timeout: float = 30.0) -> None:
    """Stop every orchestrator of this process (tests; a normal server just exits)."""
    holder = process_state()
    with holder.lock:
        gens = list(holder.generators.values())
        holder.generators.clear()
    for gen in gens:
        gen.shutdown(wait=True, timeout=timeout)


# --- pages ---------------------------------------------------------------------------------
def go(page: str, **query: str) -> None:
    """Switch page (never returns)."""
    st.switch_page(page, query_params=query or None)


def watch(job_id: str) -> None:
    """Make ``job_id`` the job this tab follows (the Live job page also puts it in the URL)."""
    st.session_state["watch_job"] = job_id


def watched_job() -> str | None:
    """The job id from the URL (after a refresh) or this tab's session, if it looks like one of ours."""
    from_url = st.query_params.get("job")
    if from_url and JOB_ID.fullmatch(from_url):
        st.session_state["watch_job"] = from_url
    job = st.session_state.get("watch_job")
    return job if isinstance(job, str) and JOB_ID.fullmatch(job) else None


def job_status(job_id: str) -> "JobStatus | None":
    try:
        return generator().status(job_id)
    except KeyError:
        return None


# --- files ---------------------------------------------------------------------------------
def safe_file(path: str | Path | None, *roots: Path) -> Path | None:
    """``path`` resolved (symlinks included) if it is a file inside one of ``roots``; else None."""
    from backend.errors import UnsafePath
    from backend.media.safe_files import resolve_inside

    if not path:
        return None
    for root in roots:
        try:
            resolved = resolve_inside(path, root)
        except UnsafePath:
            continue
        if resolved.is_file():
            return resolved
    return None


def output_file(path: str | Path | None) -> Path | None:
    """A delivered file (video, sidecar, preview): only ever served from inside outputs/."""
    return safe_file(path, generator().paths.outputs)


def preview_file(path: str | Path | None) -> Path | None:
    """A keyframe preview: inside outputs/ once the job is done, in the job's temp folder while it runs."""
    paths = generator().paths
    return safe_file(path, paths.outputs, paths.temp)


def output_reader(path: Path) -> Callable[[], bytes]:
    """Lazy contents for st.download_button: read when clicked, re-checked on the open file handle."""
    from backend.media.safe_files import read_inside

    outputs = generator().paths.outputs
    return lambda: read_inside(path, outputs)


# --- text and numbers ----------------------------------------------------------------------
_MD_ACTIVE = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$=^&])")
_SURROGATES = re.compile("[\ud800-\udfff]")
UNREADABLE_SETTINGS = "(the settings of this job could not be read)"


def shown(text: Any) -> str:
    """Any value as text the page can send (a lone surrogate, from an old undecodable prompt, becomes U+FFFD)."""
    return _SURROGATES.sub("\ufffd", "" if text is None else str(text))


def plain(text: Any) -> str:
    """User text made inert for st.markdown-based elements: every Markdown-active character escaped."""
    return _MD_ACTIVE.sub(r"\\\1", shown(text)).replace("\n", "  \n")


def prompt_of(spec: Any) -> str:
    """The job's prompt for st.text, or a note when its stored settings could not be read."""
    prompt = spec.get("prompt") if isinstance(spec, dict) else None
    return shown(prompt) if prompt else UNREADABLE_SETTINGS if not spec else ""


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def fmt_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"  # pragma: no cover - loop always returns


def fmt_when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else "—"


def spec_summary(spec: dict[str, Any]) -> str:
    """One line: size, duration, fps, seed, preset, models (whatever a stored spec holds, never an error)."""
    if not isinstance(spec, dict) or not spec:
        return "settings unknown"
    duration = spec.get("duration", 0)
    seconds = f"{duration:g} s" if isinstance(duration, (int, float)) else f"{duration} s"
    parts = [f"{spec.get('width')}×{spec.get('height')}", seconds,
             f"{spec.get('fps')} fps", f"seed {spec.get('seed', '—')}", str(spec.get("preset", ""))]
    if spec.get("model_set") == "tiny":
        parts.append(TINY_LABEL.lower())
    return shown(" · ".join(parts))


# --- errors --------------------------------------------------------------------------------
@contextmanager
def friendly_errors(action: str) -> Iterator[None]:
    """Show an unexpected failure as one readable line; the traceback goes to the log, never the page.

    Streamlit's rerun/stop signals are BaseExceptions, so they pass through untouched.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the page must survive anything the backend raises
        log.exception("UI action failed: %s", action)
        st.error(plain(f"Could not {action}: {exc}. Details are in the studio log."))

"""The studio's Streamlit entry point: page config, logging, the one orchestrator, navigation, badge.

Run with ``./launch.sh`` (or ``streamlit run app.py``). Pages live in ``app_pages/``; all model work
happens in the orchestrator's worker thread, never in this script.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

import streamlit as st

from app_pages.common import (
    PAGE_COMPARE,
    PAGE_CREATE,
    PAGE_GALLERY,
    PAGE_JOB,
    PAGE_MODELS,
    PAGE_QUEUE,
    PAGE_SYSTEM,
    friendly_errors,
    generator,
    plain,
)
from app_pages.create_state import keep_form_state
from app_pages.saved_settings import last_used
from backend.monitor import gpu_badge

LOG_FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"


def setup_logging() -> None:
    """Log to $STUDIO_LOG_FILE once per process (reruns must not add handlers)."""
    target = os.environ.get("STUDIO_LOG_FILE")
    root = logging.getLogger()
    if not target or any(getattr(h, "studio_file", False) for h in root.handlers):
        return
    path = Path(target).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    handler.studio_file = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


@st.fragment(run_every=5.0)
def sidebar_badge() -> None:
    """GPU and free VRAM on every page, plus the shared queue's length."""
    st.caption(f":material/memory: {plain(gpu_badge())}")
    with friendly_errors("read the queue"):
        gen = generator()
        jobs = gen.queue()
        running = sum(1 for j in jobs if j.state == "running")
        st.caption(f":material/queue: {running} running · {len(jobs) - running} waiting")
        if not gen.has_worker:
            st.caption("Another studio process runs the queue; this one submits and watches.")


setup_logging()
st.set_page_config(page_title="Video Studio", page_icon=":material/movie:", layout="wide")
with friendly_errors("start the job queue"):
    generator()  # start the worker with the server's first page view, not the first Generate click

create_page = st.Page(PAGE_CREATE, title="Create", icon=":material/movie_edit:", url_path="create")


def open_create() -> None:
    """The root URL: Streamlit serves the default page at "/" only, so "/" opens /create (which then works)."""
    st.switch_page(create_page)


pages = st.navigation([
    st.Page(open_create, title="Video Studio", url_path="start", default=True, visibility="hidden"),
    create_page,
    st.Page(PAGE_JOB, title="Live job", icon=":material/play_circle:", url_path="job"),
    st.Page(PAGE_QUEUE, title="Queue", icon=":material/queue:", url_path="queue"),
    st.Page(PAGE_GALLERY, title="Gallery", icon=":material/photo_library:", url_path="gallery"),
    st.Page(PAGE_COMPARE, title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page(PAGE_MODELS, title="Models", icon=":material/deployed_code:", url_path="models"),
    st.Page(PAGE_SYSTEM, title="System", icon=":material/monitor_heart:", url_path="system"),
])
with st.sidebar:
    sidebar_badge()
keep_form_state(initial=last_used)  # the form survives other pages; a new session gets the last-used settings
pages.run()

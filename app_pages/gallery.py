"""Gallery page: finished videos, newest first — play, download, reuse settings, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app_pages.common import (
    JOB_ID,
    PAGE_CREATE,
    TINY_LABEL,
    fmt_seconds,
    fmt_when,
    friendly_errors,
    generator,
    go,
    output_file,
    plain,
    preview_file,
)
from app_pages.job_panel import downloads, play

if TYPE_CHECKING:
    from backend.jobs.orchestrator import JobStatus

PAGE_SIZE = 10
HISTORY_LIMIT = 1000


def finished_videos(text: str, focus: str | None) -> list["JobStatus"]:
    """Done jobs whose video is still in outputs/, newest first, matching ``text`` (prompt or id)."""
    needle = text.strip().lower()
    found = []
    for job in generator().history(limit=HISTORY_LIMIT):
        if job.state != "done" or (focus and job.id != focus):
            continue
        if needle and needle not in str(job.spec.get("prompt", "")).lower() and not job.id.startswith(needle):
            continue
        if output_file(job.output) is not None:
            found.append(job)
    return found


def item(job: "JobStatus") -> None:
    video = output_file(job.output)
    if video is None:
        return
    spec = job.spec
    with st.container(border=True):
        poster_col, info_col = st.columns([1, 3])
        poster = next((p for p in (preview_file(x) for x in job.previews) if p is not None), None)
        if poster is not None:
            poster_col.image(str(poster), width="stretch")
        else:
            poster_col.caption("(no poster)")
        with info_col:
            st.text(spec.get("prompt", ""))
            details = [f"{float(spec.get('duration', 0)):g} s", f"{spec.get('width')}×{spec.get('height')}",
                       f"{spec.get('fps')} fps", f"seed {spec.get('seed')}", f"took {fmt_seconds(job.elapsed)}",
                       fmt_when(job.finished)]
            st.caption(plain(" · ".join(details)))
            if spec.get("model_set") == "tiny":
                st.caption(f":orange[{TINY_LABEL}]")
            if st.toggle("Play", key=f"g_play_{job.id}"):
                play(video, job.record.format if job.record is not None else None)
            downloads(job, video, key_prefix="g")
            cols = st.columns(3)
            if cols[0].button("Reuse settings", key=f"g_reuse_{job.id}", icon=":material/edit:"):
                st.session_state["reuse_spec"] = dict(spec)
                go(PAGE_CREATE)
            _delete(job, cols[1], cols[2])


def _delete(job: "JobStatus", ask_col: DeltaGenerator, confirm_col: DeltaGenerator) -> None:
    confirming = st.session_state.get("g_confirm") == job.id
    if not confirming:
        if ask_col.button("Delete", key=f"g_delete_{job.id}", icon=":material/delete:"):
            st.session_state["g_confirm"] = job.id
            st.rerun()
        return
    st.warning("Delete this video and its settings file? This cannot be undone.")
    if ask_col.button("Yes, delete", key=f"g_yes_{job.id}", type="primary"):
        with friendly_errors("delete the video"):
            st.session_state.pop("g_confirm", None)
            if generator().delete(job.id):
                st.toast("Deleted.")
            st.rerun()
    if confirm_col.button("Keep it", key=f"g_keep_{job.id}"):
        st.session_state.pop("g_confirm", None)
        st.rerun()


st.title("Gallery")
focus = st.query_params.get("job")
focus = focus if focus and JOB_ID.fullmatch(focus) else None
text = st.text_input("Filter", key="g_filter", placeholder="words from the prompt, or a job id")
if focus and st.button("Show all videos"):
    del st.query_params["job"]
    st.rerun()

with friendly_errors("list the videos"):
    videos = finished_videos(text, focus)
    if not videos:
        st.info("No videos yet." if not text and not focus else "No video matches.")
    else:
        pages = max(1, -(-len(videos) // PAGE_SIZE))
        page = 1
        if pages > 1:
            page = int(st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key="g_page"))
        st.caption(f"{len(videos)} video(s), newest first")
        for job in videos[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]:
            item(job)

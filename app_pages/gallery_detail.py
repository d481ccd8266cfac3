"""The Gallery's detail panel: one video large, its actions, and its record as a readable table.

Key facts are a two-column table (text cells); the full record is JSON in an expander, in ``st.code``,
which has a copy button.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import streamlit as st

from app_pages.common import friendly_errors, generator, job_status, output_file, plain, prompt_of, spec_summary
from app_pages.gallery_actions import compare, generate_again, open_in_create, toggle_favourite
from app_pages.job_facts import record_rows
from app_pages.job_panel import downloads, motion_summary, play, storyboard

if TYPE_CHECKING:
    from backend.jobs.orchestrator import JobStatus

ROW_PX = 35  # st.dataframe's row height: the whole record shows without a scroll bar


def detail_panel(job_id: str, favourites: set[str]) -> None:
    """The chosen job, above the grid (closed with its Close button, or when the job is gone)."""
    job = job_status(job_id)
    if job is None:
        st.session_state.pop("g_detail", None)
        return
    with st.container(border=True):
        head = st.columns([6, 1])
        head[0].subheader("Details")
        if head[1].button("Close", key="gd_close", icon=":material/close:"):
            st.session_state.pop("g_detail", None)
            st.rerun()
        st.text(prompt_of(job.spec))
        st.caption(plain(spec_summary(job.spec)))
        video = output_file(job.output) if job.state == "done" else None
        if video is not None:
            play(video, job.record.format if job.record is not None else None)
            motion_summary(job.record)
            downloads(job, video, key_prefix="gd")
        elif job.state == "done":
            st.error("The video file is missing from outputs/ (moved or deleted).")
        else:
            st.info(plain(f"This job is {job.state}: {job.error or job.message or 'no video'}."))
        storyboard(job.previews)
        _actions(job, favourites)
        _record(job)


def _actions(job: "JobStatus", favourites: set[str]) -> None:
    cols = st.columns(4)
    if cols[0].button("Open in Create", key="gd_reuse", icon=":material/edit:",
                      help="Fill the Create form with these settings (same seed: the same video)."):
        open_in_create(job)
    if cols[1].button("Generate again", key="gd_again", icon=":material/replay:",
                      help="Queue the same settings with a new random seed: a fresh take."):
        generate_again(job)
    starred = job.id in favourites
    cols[2].button("Unfavourite" if starred else "Favourite", key="gd_fav",
                   icon=":material/star:" if starred else ":material/star_border:",
                   on_click=toggle_favourite, args=(job.id, not starred))
    if cols[3].button("Compare with its group" if _group_ids(job.id) else "Compare…", key="gd_compare",
                      icon=":material/compare:",
                      help="Open Compare with this video (and the other variations queued with it)."):
        compare(_group_ids(job.id) or [job.id])


def _group_ids(job_id: str) -> list[str]:
    from backend.jobs.variations import group_members, group_of

    member = group_of(generator().store, job_id)
    if member is None:
        return []
    return [m.job_id for m in group_members(generator().store, member.group_id)]


def _record(job: "JobStatus") -> None:
    from backend.jobs.variations import group_of

    with friendly_errors("show the job's record"):
        member = group_of(generator().store, job.id)
        rows = record_rows(job, member.label if member else None)
        st.dataframe(rows, hide_index=True, width="stretch", height=ROW_PX * (len(rows) + 1) + 3)
    with st.expander("Full record (JSON)"):
        document = job.record.to_dict() if job.record is not None else {"id": job.id, "spec": job.spec}
        st.code(json.dumps(document, indent=2, ensure_ascii=False, default=str), language="json")

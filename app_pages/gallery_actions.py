"""What the Gallery's buttons do: open in Create, generate again, favourites, compare, bulk delete.

Each action goes through ``friendly_errors``; a setting the backend refuses (an uploaded input that
has gone) is one sentence naming it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import streamlit as st

from app_pages.common import PAGE_COMPARE, PAGE_CREATE, PAGE_JOB, friendly_errors, generator, go, plain, watch

if TYPE_CHECKING:
    from backend.jobs.orchestrator import JobStatus


def open_in_create(job: "JobStatus") -> None:
    """Fill the Create form with the job's settings (the Create page applies them with the form's reuse)."""
    st.session_state["reuse_spec"] = dict(job.spec)
    go(PAGE_CREATE)


def generate_again(job: "JobStatus") -> None:
    """Queue the same settings with a new random seed and follow the new job."""
    from backend.errors import SpecError
    from backend.spec import JobSpec

    with friendly_errors("queue the job again"):
        try:
            job_id = generator().submit(replace(JobSpec.from_dict(job.spec), seed=None))
        except SpecError as exc:  # e.g. its uploaded image was deleted meanwhile
            st.error(plain(f"This video's settings can't be queued again: {exc.message}"))
            return
        watch(job_id)
        go(PAGE_JOB, job=job_id)


def toggle_favourite(job_id: str, favourite: bool) -> None:
    from backend.jobs.favourites import set_favourite

    with friendly_errors("change the favourites"):
        set_favourite(generator().store, job_id, favourite)


def selected_ids(shown: list[str]) -> list[str]:
    """The jobs ticked among those ``shown`` in the grid, in the grid's order."""
    return [job_id for job_id in shown if st.session_state.get(f"g_sel_{job_id}") is True]


def clear_selection() -> None:
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith("g_sel_")]:
        del st.session_state[key]


def compare(job_ids: list[str]) -> None:
    go(PAGE_COMPARE, jobs=",".join(job_ids))


def bulk_bar(shown: list[str]) -> None:
    """Compare or delete the videos ticked among ``shown``; deleting asks first (the question above its answers)."""
    chosen = selected_ids(shown)
    if not chosen:
        return
    with st.container(border=True):
        if st.session_state.get("g_bulk_confirm"):
            st.warning(f"Delete the {len(chosen)} selected video(s) and their settings files? This cannot be "
                       "undone.")
            cols = st.columns([1, 1, 4])
            if cols[0].button("Yes, delete them", key="g_bulk_yes", type="primary"):
                st.session_state.pop("g_bulk_confirm", None)
                _delete_all(chosen)
            if cols[1].button("Keep them", key="g_bulk_keep"):
                st.session_state.pop("g_bulk_confirm", None)
                st.rerun()
            return
        cols = st.columns([2, 1, 1, 1])
        cols[0].caption(f"{len(chosen)} selected")
        if cols[1].button("Compare", key="g_bulk_compare", icon=":material/compare:", disabled=len(chosen) < 2,
                          help="Play the selected videos side by side, in sync (select two or more)."):
            compare(chosen)
        if cols[2].button("Delete", key="g_bulk_delete", icon=":material/delete:"):
            st.session_state["g_bulk_confirm"] = True
            st.rerun()
        if cols[3].button("Clear", key="g_bulk_clear", on_click=clear_selection):
            pass


def _delete_all(job_ids: list[str]) -> None:
    deleted = 0
    with friendly_errors("delete the videos"):
        for job_id in job_ids:
            deleted += bool(generator().delete(job_id))
    clear_selection()
    st.session_state.pop("g_detail", None)
    st.toast(f"Deleted {deleted} video(s).")
    st.rerun()

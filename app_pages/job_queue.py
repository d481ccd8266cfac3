"""Queue page: the server's running and waiting jobs (from every tab), and jobs that can be re-queued."""

from __future__ import annotations

import streamlit as st

from app_pages.common import (
    PAGE_JOB,
    fmt_seconds,
    fmt_when,
    friendly_errors,
    generator,
    go,
    plain,
    prompt_of,
    spec_summary,
    watch,
)
from app_pages.job_panel import resumable_stages

RETRYABLE = ("interrupted", "failed", "cancelled")
RECENT_LIMIT = 50


def _open(job_id: str) -> None:
    watch(job_id)
    go(PAGE_JOB, job=job_id)


@st.fragment(run_every=2.0)
def active_jobs() -> None:
    with friendly_errors("read the queue"):
        _draw_active()


def _draw_active() -> None:
    jobs = generator().queue()
    if not jobs:
        st.info("Nothing running or waiting.")
        return
    for position, job in enumerate(jobs):
        with st.container(border=True):
            cols = st.columns([6, 1, 1])
            with cols[0]:
                st.text(prompt_of(job.spec))
                st.caption(plain(spec_summary(job.spec)))
                if job.state == "running":
                    st.progress(min(1.0, max(0.0, job.fraction)),
                                text=plain(f"{job.stage or 'starting'} · {job.fraction:.0%} · "
                                           f"{fmt_seconds(job.elapsed)} elapsed"))
                else:
                    st.caption(f"Waiting · position {position} · queued {fmt_when(job.created)}")
            if cols[1].button("Open", key=f"q_open_{job.id}"):
                _open(job.id)
            if job.state == "running":
                if cols[2].button("Cancel", key=f"q_cancel_{job.id}"):
                    with friendly_errors("cancel the job"):
                        generator().cancel(job.id)
                        st.toast("Cancelling…")
            elif cols[2].button("Remove", key=f"q_remove_{job.id}"):
                with friendly_errors("remove the job"):
                    generator().delete(job.id)
                    st.rerun()


def retryable_jobs() -> None:
    jobs = [j for j in generator().history(limit=RECENT_LIMIT) if j.state in RETRYABLE]
    if not jobs:
        st.caption("No interrupted, failed or cancelled jobs.")
        return
    for job in jobs:
        with st.container(border=True):
            cols = st.columns([6, 1, 1])
            with cols[0]:
                st.text(prompt_of(job.spec))
                st.caption(plain(f"{job.state} · {fmt_when(job.finished or job.created)} · "
                                 f"{spec_summary(job.spec)}"))
                if job.error:
                    st.caption(plain(job.error))
                kept = resumable_stages(job.id)
                if kept:
                    st.caption(plain(f"Resume keeps the finished {', '.join(kept)} stage(s)."))
            if cols[1].button("Resume" if kept else "Run again", key=f"q_requeue_{job.id}"):
                with friendly_errors("re-queue the job"):
                    if generator().requeue(job.id):
                        st.toast("Re-queued.")
                        st.rerun()
                    st.warning("This job can't be re-queued.")
            if cols[2].button("Delete", key=f"q_delete_{job.id}"):
                with friendly_errors("delete the job"):
                    generator().delete(job.id)
                    st.rerun()


st.title("Queue")
st.caption("The queue belongs to the server: jobs started in any tab (or by the command line) show here.")
active_jobs()
st.subheader("Interrupted, failed or cancelled")
with friendly_errors("read the job history"):
    retryable_jobs()

"""Queue page: the server's running and waiting jobs (from every tab), their ETAs, and the queue's tools.

Tools: pause/resume the queue (persisted; the running job finishes, nothing new starts), move a waiting
job up or down, duplicate a job, cancel a running job (asks first), remove a waiting one. Below:
interrupted, failed and cancelled jobs, to re-queue or delete. The list of running and waiting jobs
polls every 2 s; when a job leaves it (done, cancelled, failed) the whole page redraws, so the list
below it is never stale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from backend.jobs.orchestrator import JobStatus
    from backend.jobs.queue_eta import JobEta, QueueEta

RETRYABLE = ("interrupted", "failed", "cancelled")
RECENT_LIMIT = 50


def _open(job_id: str) -> None:
    watch(job_id)
    go(PAGE_JOB, job=job_id)


def _about(seconds: float | None, calibrated: bool) -> str:
    if seconds is None:
        return "unknown"
    return f"~{fmt_seconds(seconds)}" + ("" if calibrated else " (rough)")


@st.fragment(run_every=2.0)
def active_jobs() -> None:
    with friendly_errors("read the queue"):
        _draw_active()


def _draw_active() -> None:
    from backend.jobs.queue_eta import queue_eta, spec_estimator
    from backend.jobs.queue_tools import is_paused
    from backend.jobs.variations import groups_by_job

    gen = generator()
    jobs = gen.queue()
    ids = [job.id for job in jobs]
    before = st.session_state.get("q_active")
    st.session_state["q_active"] = ids
    if before is not None and set(before) - set(ids):
        st.rerun()  # a job has ended: redraw the whole page (the list below it included), not only this part
    paused = is_paused(gen.store)
    eta = queue_eta(jobs, spec_estimator(gen.calibration, gen.hardware))
    _header(jobs, eta, paused)
    if not jobs:
        st.info("Nothing running or waiting.")
        return
    groups = groups_by_job(gen.store)
    waiting = [job.id for job in jobs if job.state != "running"]
    for job in jobs:
        member = groups.get(job.id)
        _job_row(job, eta.get(job.id), waiting, member.label if member else None)


def _header(jobs: list["JobStatus"], eta: "QueueEta", paused: bool) -> None:
    from backend.jobs.queue_tools import set_paused

    running = sum(1 for job in jobs if job.state == "running")
    cols = st.columns([1, 1, 2, 2])
    cols[0].metric("Running", running)
    cols[1].metric("Waiting", len(jobs) - running)
    cols[2].metric("Queue done in", _about(eta.total, eta.calibrated) if jobs else "—",
                   help="From how long each stage took on this machine for earlier jobs of the same models "
                        "(\"rough\": some stages have not been measured yet, so the planner's estimate is used).")
    label, icon = ("Resume the queue", ":material/play_arrow:") if paused else ("Pause the queue", ":material/pause:")
    if cols[3].button(label, key="q_pause", icon=icon,
                      help="Paused: the running job finishes, no waiting job starts (kept across restarts)."):
        with friendly_errors("pause or resume the queue"):
            set_paused(generator().store, not paused)
            st.rerun()
    if paused:
        st.warning("The queue is paused: the running job finishes, no waiting job starts until you resume it.")


def _job_row(job: "JobStatus", eta: "JobEta | None", waiting: list[str], group_label: str | None) -> None:
    with st.container(border=True):
        cols = st.columns([6, 1, 1, 1, 1, 1.5])
        with cols[0]:
            st.text(prompt_of(job.spec))
            st.caption(plain(spec_summary(job.spec)) + (f" · variation: {plain(group_label)}" if group_label else ""))
            calibrated = eta.calibrated if eta else False
            if job.state == "running":
                left = job.eta_seconds if job.eta_seconds is not None else (eta.seconds if eta else None)
                st.progress(min(1.0, max(0.0, job.fraction)),
                            text=plain(f"{job.stage or 'starting'} · {job.fraction:.0%} · {fmt_seconds(job.elapsed)}"
                                       f" elapsed · {_about(left, calibrated)} left"))
            else:
                position = waiting.index(job.id) + 1
                if eta is None:
                    starts = ""
                else:
                    starts = "next" if eta.starts_in == 0 else f"in {_about(eta.starts_in, calibrated)}"
                timing = f"starts {starts} · runs {_about(eta.seconds, calibrated)}" if eta else ""
                st.caption(plain(f"Waiting · #{position} · queued {fmt_when(job.created)} · {timing}"))
        if cols[1].button("Open", key=f"q_open_{job.id}"):
            _open(job.id)
        if cols[2].button("", key=f"q_dup_{job.id}", icon=":material/content_copy:",
                          help="Duplicate: queue the same settings (same seed) again, at the end"):
            _duplicate(job)
        if job.state == "running":
            _cancel(job, cols[3])
            return
        position = waiting.index(job.id)
        if cols[3].button("", key=f"q_up_{job.id}", icon=":material/arrow_upward:", disabled=position == 0,
                          help="Move up: run earlier"):
            _move(job.id, -1)
        if cols[4].button("", key=f"q_down_{job.id}", icon=":material/arrow_downward:",
                          disabled=position == len(waiting) - 1, help="Move down: run later"):
            _move(job.id, 1)
        if cols[5].button("Remove", key=f"q_remove_{job.id}"):
            with friendly_errors("remove the job"):
                generator().delete(job.id)
                st.rerun()


def _cancel(job: "JobStatus", col) -> None:  # col: a DeltaGenerator
    if st.session_state.get("q_confirm_cancel") != job.id:
        if col.button("Cancel", key=f"q_cancel_{job.id}"):
            st.session_state["q_confirm_cancel"] = job.id
            st.rerun()
        return
    # The question first, then its answers.
    st.warning("Cancel the running job? Its finished stages are kept: Resume continues from them.")
    cols = st.columns([1, 1, 4])
    if cols[0].button("Yes, cancel", key=f"q_cancel_yes_{job.id}", type="primary"):
        st.session_state.pop("q_confirm_cancel", None)
        with friendly_errors("cancel the job"):
            generator().cancel(job.id)
            st.toast("Cancelling…")
    if cols[1].button("Keep running", key=f"q_cancel_no_{job.id}"):
        st.session_state.pop("q_confirm_cancel", None)
        st.rerun()


def _move(job_id: str, offset: int) -> None:
    from backend.jobs.queue_tools import move

    with friendly_errors("move the job"):
        move(generator().store, job_id, offset)
        st.rerun()


def _duplicate(job: "JobStatus") -> None:
    from backend.errors import SpecError
    from backend.spec import JobSpec

    with friendly_errors("duplicate the job"):
        try:
            generator().submit(JobSpec.from_dict(job.spec))
        except SpecError as exc:  # e.g. an uploaded input deleted meanwhile
            st.error(plain(f"This job can't be duplicated: {exc.message}"))
            return
        st.toast("Duplicated: the copy waits at the end of the queue.")


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


def review_jobs() -> None:
    """Jobs whose keyframes wait for the user: they hold no GPU; Review opens the storyboard editor."""
    jobs = [j for j in generator().history(limit=RECENT_LIMIT) if j.state == "awaiting_review"]
    if not jobs:
        return
    st.subheader("Waiting for your review")
    for job in jobs:
        with st.container(border=True):
            cols = st.columns([6, 1])
            with cols[0]:
                st.text(prompt_of(job.spec))
                st.caption(plain(f"keyframes ready · {fmt_when(job.started or job.created)} · "
                                 f"{spec_summary(job.spec)}"))
            if cols[1].button("Review", key=f"q_review_{job.id}", icon=":material/edit:"):
                _open(job.id)


st.title("Queue")
st.caption("The queue belongs to the server: jobs started in any tab (or by the command line) show here.")
active_jobs()
with friendly_errors("read the jobs waiting for review"):
    review_jobs()
st.subheader("Interrupted, failed or cancelled")
with friendly_errors("read the job history"):
    retryable_jobs()

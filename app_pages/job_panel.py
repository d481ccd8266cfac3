"""The live job panel: a fragment polling ``status(id)`` once a second, and the finished view.

The panel only reads snapshots; all work happens in the orchestrator's worker thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from app_pages.common import (
    PAGE_CREATE,
    PAGE_GALLERY,
    fmt_seconds,
    fmt_when,
    friendly_errors,
    generator,
    go,
    job_status,
    output_file,
    output_reader,
    plain,
    preview_file,
    spec_summary,
)
from app_pages.segment_previews import segment_previews
from app_pages.storyboard_editor import storyboard_editor

if TYPE_CHECKING:
    from backend.jobs.orchestrator import JobStatus
    from backend.record import JobRecord

log = logging.getLogger("studio.ui")

STAGE_LABELS = {
    "analyze": "Analysing the prompt",
    "keyframes": "Drawing keyframes",
    "motion": "Animating between keyframes",
    "assemble": "Assembling the clip",
    "finish": "Finishing (grade, sharpen, encode)",
}
LOG_TAIL = 40
VIDEO_WIDTH = 960  # px: big enough to judge, small enough to leave the storyboard and buttons in view


def job_panel(job_id: str) -> None:
    """Everything about one job: live while it runs, the video once it is done."""
    status = job_status(job_id)
    if status is None:
        st.warning("That job no longer exists (it was deleted).")
        return
    st.subheader("Current job")
    st.text(status.spec.get("prompt", ""))
    st.caption(plain(spec_summary(status.spec)))
    if status.is_active:
        _live(job_id)
    else:
        finished_view(status)


@st.fragment(run_every=1.0)
def _live(job_id: str) -> None:
    status = job_status(job_id)
    if status is None or not status.is_active:
        st.rerun()  # the whole page redraws once with the finished view, which needs no polling
    with friendly_errors("show the job's progress"):
        if status.state == "queued":
            _queued(status)
        else:
            _running(status)
    if st.button("Cancel", key=f"cancel_{job_id}", icon=":material/cancel:"):
        with friendly_errors("cancel the job"):
            generator().cancel(job_id)
            st.toast("Cancelling…")


def _queued(status: "JobStatus") -> None:
    waiting = [s.id for s in generator().queue()]
    ahead = waiting.index(status.id) if status.id in waiting else 0
    st.status(f"Waiting in the queue — {ahead} job(s) ahead", state="running")


def _running(status: "JobStatus") -> None:
    stage = STAGE_LABELS.get(status.stage, status.stage or "Starting")
    step = f" — step {status.step}/{status.total_steps}" if status.step is not None and status.total_steps else ""
    st.status(f"{stage}{step}", state="running")
    st.progress(min(1.0, max(0.0, status.fraction)), text=plain(status.message) if status.message else None)
    cols = st.columns(3)
    cols[0].metric("Overall", f"{status.fraction:.0%}")
    cols[1].metric("Elapsed", fmt_seconds(status.elapsed))
    cols[2].metric("Remaining (est.)", fmt_seconds(status.eta_seconds))
    with st.container():  # always there, so the first keyframe does not shift (and close) the Log below
        storyboard(status.previews, status.id)
    with st.container():  # the same for the first finished motion segment
        segment_previews(status.id)
    with st.expander("Log", expanded=False, key=f"log_{status.id}"):  # keyed: stays open across refreshes
        st.code("\n".join(status.log[-LOG_TAIL:]) or "(no messages yet)", language=None)


def storyboard(previews: tuple[str, ...] | list[str], job_id: str | None = None) -> None:
    """The keyframes made so far, as a strip: the previews, else (a cancelled, failed or interrupted job)
    the keyframes still in its work folder. A file that vanishes while it is read is left out."""
    files = [f for f in (preview_file(p) for p in previews) if f is not None]
    if not files and job_id is not None:
        folder = generator().paths.job_workdir(job_id) / "keyframes"
        files = sorted(folder.glob("keyframe_[0-9][0-9][0-9].png")) if folder.is_dir() else []
    pictures = []
    for file in files:
        try:
            pictures.append(file.read_bytes())
        except OSError:  # deleted or replaced meanwhile (a resume cleaning up, a finished job moving it)
            continue
    if not pictures:
        return
    st.caption("Storyboard")
    st.image(pictures, width=160, caption=[f"keyframe {i + 1}" for i in range(len(pictures))])


def finished_view(status: "JobStatus") -> None:
    if status.state == "done":
        _done(status)
        return
    if status.state == "awaiting_review":
        storyboard_editor(status)
        return
    if status.state == "cancelled":
        st.info("The job was cancelled.")
    elif status.state == "interrupted":
        st.warning("The job was interrupted (the studio stopped while it ran). Resume it to continue where it"
                   " stopped.")
    else:
        st.error(plain(status.error or "The job failed without a message. Details are in the studio log."))
    storyboard(status.previews, status.id)
    segment_previews(status.id)  # the segments made before it stopped (Resume keeps them)
    if status.log:
        with st.expander("Log"):
            st.code("\n".join(status.log[-LOG_TAIL:]), language=None)
    kept = resumable_stages(status.id)
    if kept:
        st.caption(plain(f"Resume keeps the finished {', '.join(kept)} stage(s) and runs the rest."))
    cols = st.columns(2)
    if cols[0].button("Resume" if kept else "Run again", key=f"requeue_{status.id}", icon=":material/replay:"):
        with friendly_errors("re-queue the job"):
            if generator().requeue(status.id):
                st.rerun()
            st.warning("This job can't be re-queued.")
    if cols[1].button("Edit settings", key=f"edit_{status.id}"):
        st.session_state["reuse_spec"] = dict(status.spec)
        go(PAGE_CREATE)


def resumable_stages(job_id: str) -> list[str]:
    """Stages a re-queue would keep (the orchestrator checks their checkpoints); [] if it starts over."""
    try:
        return list(generator().resumable_stages(job_id))
    except (AttributeError, KeyError, OSError, ValueError) as exc:  # a hint only: never worth an error box
        log.warning("could not list the resumable stages of %s: %s", job_id, exc)
        return []


def _done(status: "JobStatus") -> None:
    record = status.record
    fmt = (record.format if record is not None else None) or "mp4/h264"
    fallbacks = record.finish_fallbacks if record is not None else []
    if fallbacks:  # say so when the studio delivered something lesser than an H.264 MP4
        st.warning(plain(f"Delivered as {fmt}: " + " ".join(map(str, fallbacks))))
    if fmt == "png-frames":
        st.warning(plain(f"No video encoder worked; the frames are in the folder {status.output}."))
        storyboard(status.previews)
        return
    video = output_file(status.output)
    if video is None:
        st.error("The video file is missing from outputs/ (moved or deleted).")
        return
    st.success(f"Done in {fmt_seconds(status.elapsed)} — {fmt_when(status.finished)}")
    play(video, fmt)
    motion_summary(record)
    storyboard(status.previews)
    downloads(status, video)
    if record is not None and record.stages.items():
        with st.expander("Details: stages, memory plans, timings"):
            st.json(record.stages.to_dict(), expanded=False)
    if st.button("Open in gallery", key=f"gallery_{status.id}", icon=":material/photo_library:"):
        go(PAGE_GALLERY, job=status.id)


def motion_summary(record: "JobRecord | None") -> None:
    """How the video met its storyboard: conditioned on the keyframes, one shot, or crossfaded (a fallback)."""
    motion = record.stages.motion if record is not None else None
    if motion is None or not motion.join:
        return
    text = f"Motion: {motion.model} — {motion.join}"
    if motion.conditioning == "first_frame":
        st.warning(plain(text))  # a fallback: the joins toward the keyframes are crossfades
    else:
        st.caption(plain(text))
    if motion.substitution:
        st.caption(plain(motion.substitution))


def play(video: Path, fmt: str | None) -> None:
    """Inline playback: H.264 MP4 as a video, GIF as an image; other codecs only download."""
    fmt = fmt or "mp4/h264"
    if fmt == "gif":
        st.image(str(video))
    elif fmt == "mp4/h264":
        st.video(str(video), format="video/mp4", width=VIDEO_WIDTH)
    else:
        st.info(plain(f"Browsers cannot play {fmt} inline; download the file to watch it."))


def downloads(status: "JobStatus", video: Path, key_prefix: str = "dl") -> None:
    cols = st.columns(2)
    cols[0].download_button("Download MP4", output_reader(video), file_name=video.name, mime="video/mp4",
                            key=f"{key_prefix}_video_{status.id}", on_click="ignore", icon=":material/download:")
    sidecar = output_file(status.sidecar)
    if sidecar is not None:
        cols[1].download_button("Download settings (JSON)", output_reader(sidecar), file_name=sidecar.name,
                                mime="application/json", key=f"{key_prefix}_json_{status.id}", on_click="ignore")

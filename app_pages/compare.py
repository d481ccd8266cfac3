"""Compare page: two or more finished videos played in sync (side by side or an A/B wipe), and what differs.

The videos come from the URL (``?jobs=id,id`` from the Gallery, ``?group=id`` for variations queued
together) or the picker. A group's jobs that are still waiting or running are listed with their
progress, and join the player as they finish. Prompts and settings are ordinary Streamlit elements;
the player only ever shows the letters A, B, C...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from app_pages.common import (
    JOB_ID,
    fmt_when,
    friendly_errors,
    generator,
    output_file,
    plain,
    prompt_of,
    shown,
    spec_summary,
)
from app_pages.job_facts import differences
from app_pages.sync_player import LETTERS, MAX_VIDEO_BYTES, playable, sync_player

if TYPE_CHECKING:
    from backend.jobs.orchestrator import JobStatus
    from backend.jobs.variations import GroupMember

HISTORY_LIMIT = 300
MAX_PICKED = len(LETTERS)


def _ids(text: str | None) -> list[str]:
    return [part for part in (text or "").split(",") if JOB_ID.fullmatch(part)]


def _choices() -> dict[str, "JobStatus"]:
    """Finished videos still in outputs/, newest first."""
    return {job.id: job for job in generator().history(limit=HISTORY_LIMIT)
            if job.state == "done" and output_file(job.output) is not None}


def _label(job: "JobStatus", labels: dict[str, str]) -> str:
    prompt = prompt_of(job.spec)
    head = prompt if len(prompt) <= 60 else prompt[:60].rstrip() + "…"
    extra = labels.get(job.id) or f"seed {job.spec.get('seed')}"
    return shown(f"{head} · {extra} · {fmt_when(job.finished)}")


def _group(group_id: str) -> list["GroupMember"]:
    from backend.jobs.variations import group_members

    return group_members(generator().store, group_id)


@st.fragment(run_every=2.0)
def group_progress(group_id: str) -> None:
    """The group's jobs still waiting or running; the page redraws when one of them ends."""
    from app_pages.common import job_status

    members = _group(group_id)
    statuses = {m.job_id: job_status(m.job_id) for m in members}
    active = sorted(i for i, s in statuses.items() if s is not None and s.is_active)
    before = st.session_state.get("cmp_active")
    st.session_state["cmp_active"] = active
    if before is not None and before != active:
        st.rerun()  # a variation finished: the whole page, player included, redraws with it
    if not active:
        return
    waiting = [m for m in members if m.job_id in active]
    cols = st.columns(min(4, len(waiting)))
    for i, member in enumerate(waiting):
        status = statuses[member.job_id]
        with cols[i % len(cols)]:
            st.caption(plain(member.label))
            if status.state == "running":
                st.progress(min(1.0, max(0.0, status.fraction)), text=plain(f"{status.stage or 'starting'} · "
                                                                              f"{status.fraction:.0%}"))
            else:
                st.caption("waiting in the queue")


def picker(choices: dict[str, "JobStatus"], labels: dict[str, str]) -> list[str]:
    """The multiselect, seeded from the URL; the URL follows the choice so a refresh keeps it."""
    wanted = _ids(st.query_params.get("jobs"))
    group_id = st.query_params.get("group")
    if group_id and JOB_ID.fullmatch(group_id):
        wanted = [m.job_id for m in _group(group_id)]
    source = f"{st.query_params.get('jobs', '')}|{group_id or ''}|{','.join(i for i in wanted if i in choices)}"
    if st.session_state.get("cmp_source") != source:
        st.session_state["cmp_source"] = source
        st.session_state["cmp_jobs"] = [i for i in wanted if i in choices][:MAX_PICKED]
    st.session_state["cmp_jobs"] = [i for i in st.session_state.get("cmp_jobs", []) if i in choices]
    picked = st.multiselect("Videos to compare", list(choices), key="cmp_jobs", max_selections=MAX_PICKED,
                            format_func=lambda i: _label(choices[i], labels),
                            placeholder="pick two or more finished videos")
    if not group_id:
        joined = ",".join(picked)
        if joined != st.query_params.get("jobs", ""):
            st.session_state["cmp_source"] = f"{joined}||{','.join(i for i in _ids(joined) if i in choices)}"
            if joined:
                st.query_params["jobs"] = joined
            else:
                st.query_params.pop("jobs", None)
    return picked


def compare(jobs: list["JobStatus"], labels: dict[str, str]) -> None:
    letters = list(LETTERS[: len(jobs)])
    cols = st.columns(min(len(jobs), 3))
    for i, (job, letter) in enumerate(zip(jobs, letters)):
        with cols[i % len(cols)]:
            st.markdown(f"**{letter}**" + (f" · {plain(labels[job.id])}" if job.id in labels else ""))
            st.text(prompt_of(job.spec))
            st.caption(plain(spec_summary(job.spec)))
    wipe = st.radio("View", ["side", "wipe"], key="cmp_mode", horizontal=True,
                    format_func={"side": "Side by side", "wipe": "A/B wipe (A and B)"}.get) == "wipe"
    files = [output_file(job.output) for job in jobs]
    present = [i for i, f in enumerate(files) if f is not None]
    inline = [i for i in present if _h264(jobs[i])]
    fitting, too_large = playable([files[i] for i in inline])
    in_player = [inline[i] for i in fitting]
    if len(in_player) >= 1:
        sync_player([files[i] for i in in_player], [letters[i] for i in in_player], generator().paths.outputs,
                    wipe=wipe and len(in_player) >= 2, key="cmp_player")
        st.caption("Play, pause, restart and the position bar act on every video at once"
                   + ("; drag the second bar to move the A/B split." if wipe else "."))
    for i in (inline[j] for j in too_large):
        size = files[i].stat().st_size / 2**20
        st.warning(f"{letters[i]} is {size:.0f} MB, too large to play in sync here (the limit is "
                   f"{MAX_VIDEO_BYTES // 2**20} MB a video); it plays on its own:")
        st.video(str(files[i]), format="video/mp4")
    for i in present:
        if i not in inline:
            st.info(f"{letters[i]} is not an H.264 MP4, so browsers cannot play it here; download it from the "
                    "Gallery.")
    st.subheader("What differs")
    everything = st.toggle("Show every setting", key="cmp_all")
    rows = differences(jobs, letters, everything=everything)
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption("Same settings: these videos differ only by chance (or not at all).")


def _h264(job: "JobStatus") -> bool:
    fmt = job.record.format if job.record is not None else None
    return (fmt or "mp4/h264") == "mp4/h264"


st.title("Compare")
st.caption("Pick two or more finished videos: they play in sync, and the settings that differ are listed.")
with friendly_errors("compare the videos"):
    group = st.query_params.get("group")
    group = group if group and JOB_ID.fullmatch(group) else None
    labels: dict[str, str] = {}
    if group:
        members = _group(group)
        labels = {m.job_id: m.label for m in members}
        axis = members[0].axis.replace("_", " ") if members else "a setting"
        st.info(f"Variations of {axis}: {len(members)} video(s) queued together." if members else
                "That group of variations no longer exists.")
        group_progress(group)
    choices = _choices()
    picked = picker(choices, labels)
    if len(picked) >= 2:
        compare([choices[i] for i in picked], labels)
    elif choices:
        st.info("Pick at least two videos to compare.")
    else:
        st.info("No finished videos yet.")

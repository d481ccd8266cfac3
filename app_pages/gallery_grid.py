"""The Gallery's grid: which jobs show (filters and sort, pure) and one card per job.

A card is the poster (the job's first keyframe), the prompt, a line of facts, Play (inline), a
favourite star, a selection box (for Compare and bulk delete), Details (the readable record above the
grid) and a menu: open in Create, generate again, downloads, delete (asks first, the question above
its buttons).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import streamlit as st

from app_pages.common import (
    TINY_LABEL,
    fmt_seconds,
    fmt_when,
    friendly_errors,
    generator,
    output_file,
    plain,
    preview_file,
    prompt_of,
)
from app_pages.gallery_actions import generate_again, open_in_create, toggle_favourite
from app_pages.job_panel import downloads, play

if TYPE_CHECKING:
    from backend.jobs.orchestrator import JobStatus
    from backend.jobs.variations import GroupMember

SORTS = {"newest": "Newest first", "oldest": "Oldest first", "favourites": "Favourites first",
         "prompt": "Prompt A–Z"}
PERIODS = {"any": ("Any time", None), "day": ("Last 24 hours", 1.0), "week": ("Last 7 days", 7.0),
           "month": ("Last 30 days", 30.0)}
STATES = ("done", "failed", "cancelled", "interrupted")
PROMPT_CHARS = 140  # a card shows the start of a long prompt; Details shows all of it


@dataclass(frozen=True)
class GalleryFilter:
    words: str = ""  # every word must be in the prompt (any order), or the text starts the job id
    seed: int | None = None
    engines: tuple[str, ...] = ()  # asked for, or used
    model_sets: tuple[str, ...] = ()
    states: tuple[str, ...] = ("done",)
    days: float | None = None  # finished (or queued) within the last ``days``
    favourites_only: bool = False
    sort: str = "newest"
    focus: str | None = None  # one job (the Live job page's "Open in gallery")


def engines_of(job: "JobStatus") -> set[str]:
    found = {str(job.spec.get("engine", ""))}
    motion = job.record.stages.motion if job.record is not None else None
    if motion is not None and motion.engine:
        found.add(motion.engine)
    return found


def matches(job: "JobStatus", rule: GalleryFilter, favourites: set[str], now: float) -> bool:
    spec = job.spec if isinstance(job.spec, dict) else {}
    if rule.focus and job.id != rule.focus:
        return False
    if job.state not in rule.states or (rule.favourites_only and job.id not in favourites):
        return False
    words = rule.words.lower().split()
    if words:
        text = f"{spec.get('prompt', '')} {spec.get('enhanced_prompt') or ''}".lower()
        if not all(w in text for w in words) and not (len(words) == 1 and job.id.startswith(words[0])):
            return False
    if rule.seed is not None and spec.get("seed") != rule.seed:
        return False
    if rule.engines and not engines_of(job) & set(rule.engines):
        return False
    if rule.model_sets and spec.get("model_set", "default") not in rule.model_sets:
        return False
    if rule.days is not None and (job.finished or job.created) < now - rule.days * 86400:
        return False
    return job.state != "done" or output_file(job.output) is not None  # a done job whose file is gone: hidden


def select(jobs: list["JobStatus"], rule: GalleryFilter, favourites: set[str], now: float | None = None
           ) -> list["JobStatus"]:
    """The jobs the grid shows, in the chosen order."""
    now = time.time() if now is None else now
    found = [job for job in jobs if matches(job, rule, favourites, now)]
    newest = sorted(found, key=lambda j: j.finished or j.created, reverse=True)
    if rule.sort == "oldest":
        return newest[::-1]
    if rule.sort == "favourites":
        return sorted(newest, key=lambda j: j.id not in favourites)  # stable: newest first within each
    if rule.sort == "prompt":
        return sorted(newest, key=lambda j: str(j.spec.get("prompt", "")).lower())
    return newest


def _facts(job: "JobStatus") -> str:
    spec: dict[str, Any] = job.spec if isinstance(job.spec, dict) else {}
    duration = spec.get("duration")
    parts = [f"{float(duration):g} s" if isinstance(duration, (int, float)) else "",
             f"{spec.get('width')}×{spec.get('height')}", f"{spec.get('fps')} fps", f"seed {spec.get('seed')}",
             "/".join(sorted(e for e in engines_of(job) if e)), f"took {fmt_seconds(job.elapsed)}",
             fmt_when(job.finished or job.created)]
    if job.state != "done":
        parts.insert(0, job.state)
    return " · ".join(p for p in parts if p)


def card(job: "JobStatus", favourites: set[str], member: "GroupMember | None") -> None:
    """One job in the grid."""
    video = output_file(job.output) if job.state == "done" else None
    with st.container(border=True):
        playing = video is not None and st.session_state.get(f"g_play_{job.id}", False)
        if playing:
            fmt = job.record.format if job.record is not None else None
            if (fmt or "mp4/h264") == "mp4/h264":
                st.video(str(video), format="video/mp4", autoplay=True, width="stretch")
            else:
                play(video, fmt)
        else:
            poster = next((p for p in (preview_file(x) for x in job.previews) if p is not None), None)
            if poster is not None:
                st.image(str(poster), width="stretch")
            else:
                st.caption("(no poster)")
        prompt = prompt_of(job.spec)
        st.text(prompt if len(prompt) <= PROMPT_CHARS else prompt[:PROMPT_CHARS].rstrip() + "…")
        st.caption(plain(_facts(job)))
        if member is not None:
            st.caption(plain(f"Variation: {member.label}"))
        if job.spec.get("model_set") == "tiny":
            st.caption(f":orange[{TINY_LABEL}]")
        cols = st.columns([3, 2, 3])
        if video is not None:
            cols[0].toggle("Play", key=f"g_play_{job.id}")
        starred = job.id in favourites
        cols[1].button("", key=f"g_fav_{job.id}", icon=":material/star:" if starred else ":material/star_border:",
                       help="Remove from favourites" if starred else "Add to favourites",
                       on_click=toggle_favourite, args=(job.id, not starred))
        cols[2].checkbox("Select", key=f"g_sel_{job.id}", help="Select for Compare or bulk delete")
        if st.session_state.get("g_confirm") == job.id:
            _confirm_delete(job)
        else:
            _menu(job, video)


def _menu(job: "JobStatus", video: Any) -> None:
    cols = st.columns(2)
    if cols[0].button("Details", key=f"g_open_{job.id}", icon=":material/info:", width="stretch"):
        st.session_state["g_detail"] = job.id
        st.rerun()
    with cols[1].popover("More", icon=":material/more_horiz:", width="stretch"):
        if st.button("Open in Create", key=f"g_reuse_{job.id}", icon=":material/edit:",
                     help="Fill the Create form with this video's settings (same seed: the same video)."):
            open_in_create(job)
        if st.button("Generate again", key=f"g_again_{job.id}", icon=":material/replay:",
                     help="Queue the same settings with a new random seed: a fresh take."):
            generate_again(job)
        if video is not None:
            downloads(job, video, key_prefix="g")
        if st.button("Delete", key=f"g_delete_{job.id}", icon=":material/delete:"):
            st.session_state["g_confirm"] = job.id
            st.rerun()


def _confirm_delete(job: "JobStatus") -> None:
    # The question comes first, then its answers (the warning used to sit below the buttons).
    st.warning("Delete this video and its settings file? This cannot be undone.")
    cols = st.columns(2)
    if cols[0].button("Yes, delete", key=f"g_yes_{job.id}", type="primary"):
        with friendly_errors("delete the video"):
            st.session_state.pop("g_confirm", None)
            if generator().delete(job.id):
                st.toast("Deleted.")
            st.rerun()
    if cols[1].button("Keep it", key=f"g_keep_{job.id}"):
        st.session_state.pop("g_confirm", None)
        st.rerun()

"""Gallery page: finished videos as a grid of posters — filter, sort, play, favourite, compare, delete.

Filters: prompt words (any order) or a job id, seed, engine (asked for or used), model set, state,
period, favourites; sorted newest or oldest first, favourites first, or by prompt. "Details" opens the
readable record above the grid; ticking cards offers Compare and bulk delete (asks first).
"""

from __future__ import annotations

import streamlit as st

from app_pages.common import JOB_ID, friendly_errors, generator
from app_pages.gallery_actions import bulk_bar
from app_pages.gallery_detail import detail_panel
from app_pages.gallery_grid import PERIODS, SORTS, STATES, GalleryFilter, card, select
from backend.spec import ENGINES, MODEL_SETS

COLUMNS = 3
PAGE_SIZE = 12
HISTORY_LIMIT = 1000
MODEL_SET_LABELS = {"default": "Real models", "tiny": "Test models"}


def filters(focus: str | None) -> GalleryFilter | None:
    """The filter row; None when the seed typed is not a number (said under it)."""
    cols = st.columns([3, 1, 1, 1])
    text = cols[0].text_input("Filter", key="g_filter", placeholder="words from the prompt (any order), or a job id")
    seed_text = cols[1].text_input("Seed", key="g_seed", placeholder="any")
    cols[2].selectbox("Period", list(PERIODS), key="g_period", format_func=lambda p: PERIODS[p][0])
    cols[3].selectbox("Sort", list(SORTS), key="g_sort", format_func=SORTS.get)
    cols = st.columns([2, 2, 2, 1])
    engines = cols[0].multiselect("Engine", list(ENGINES), key="g_engines", placeholder="any engine")
    model_sets = cols[1].multiselect("Models", list(MODEL_SETS), key="g_models", format_func=MODEL_SET_LABELS.get,
                                     placeholder="any")
    if "g_states" not in st.session_state:
        st.session_state["g_states"] = ["done"]
    states = cols[2].multiselect("State", list(STATES), key="g_states", placeholder="finished videos")
    favourites_only = cols[3].toggle("Favourites", key="g_favs_only")
    seed = None
    if seed_text.strip():
        if not seed_text.strip().isdigit():
            st.warning("The seed filter takes a whole number.")
            return None
        seed = int(seed_text.strip())
    return GalleryFilter(words=text, seed=seed, engines=tuple(engines), model_sets=tuple(model_sets),
                         states=tuple(states) or ("done",), days=PERIODS[st.session_state["g_period"]][1],
                         favourites_only=favourites_only, sort=st.session_state["g_sort"], focus=focus)


def grid(rule: GalleryFilter) -> None:
    from backend.jobs.favourites import favourite_ids
    from backend.jobs.variations import groups_by_job

    store = generator().store
    favourites = favourite_ids(store)
    detail = st.session_state.get("g_detail")
    if isinstance(detail, str) and JOB_ID.fullmatch(detail):
        detail_panel(detail, favourites)
    jobs = select(generator().history(limit=HISTORY_LIMIT), rule, favourites)
    if not jobs:
        filtered = rule != GalleryFilter(sort=rule.sort)
        st.info("No video matches." if filtered else "No videos yet.")
        return
    pages = max(1, -(-len(jobs) // PAGE_SIZE))
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key="g_page"))
    st.caption(f"{len(jobs)} video(s) · {SORTS.get(rule.sort, '').lower()}")
    shown = jobs[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    bulk_bar([job.id for job in shown])
    groups = groups_by_job(store)
    for row in range(0, len(shown), COLUMNS):
        for col, job in zip(st.columns(COLUMNS), shown[row: row + COLUMNS]):
            with col:
                card(job, favourites, groups.get(job.id))


st.title("Gallery")
focus = st.query_params.get("job")
focus = focus if focus and JOB_ID.fullmatch(focus) else None
if focus and st.session_state.get("g_focus_seen") != focus:
    st.session_state["g_focus_seen"] = focus  # arriving from "Open in gallery": its details open once
    st.session_state["g_detail"] = focus
if focus and st.button("Show all videos", key="g_show_all"):
    del st.query_params["job"]
    st.rerun()
with friendly_errors("list the videos"):
    rule = filters(focus)
    if rule is not None:
        grid(rule)

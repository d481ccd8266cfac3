"""The Create page's "Variations" control: queue N versions of the form's video that differ in one setting.

Vary the seed (consecutive from the form's seed, or random) or give a list of values for guidance,
motion strength, the engine or the grade. The backend (``backend.jobs.variations``) expands and checks
the values (a bad one is named) and queues them as a group; the Compare page then shows the group side
by side, its unfinished jobs with their progress.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import streamlit as st

from app_pages.common import PAGE_COMPARE, friendly_errors, generator, go, plain

if TYPE_CHECKING:
    from backend.spec import JobSpec

KINDS = {"seeds_next": "Seed: consecutive", "seeds_random": "Seed: random", "guidance": "Guidance",
         "motion_strength": "Motion strength", "engine": "Motion engine", "grade": "Colour grade"}
EXAMPLES = {"guidance": "e.g. 4, 6, 8, 10", "motion_strength": "e.g. 0.2, 0.5, 0.8"}
DEFAULT_COUNT = 3


def _values(kind: str, base: "JobSpec") -> tuple[str, list[Any]]:
    """(axis, values) for ``kind`` from the controls (SpecError names a bad value)."""
    from backend.jobs.variations import consecutive_seeds, parse_values, random_seeds

    count = int(st.session_state.get("v_count") or DEFAULT_COUNT)
    if kind == "seeds_next":
        start = base.with_seed().seed  # the form's seed, or a random start when the form's seed is random
        return "seed", consecutive_seeds(int(start or 0), count)
    if kind == "seeds_random":
        return "seed", random_seeds(count)
    if kind in ("engine", "grade"):
        return kind, list(st.session_state.get(f"v_pick_{kind}") or [])
    return kind, parse_values(kind, st.session_state.get(f"v_values_{kind}") or "")


def variations_controls(base_spec_builder: Callable[[], "JobSpec | None"], problem: str | None = None) -> None:
    """Draw the control; ``base_spec_builder()`` gives the form's validated spec (None: ``problem`` says why)."""
    from backend.jobs.variations import CHOICES, MAX_VARIATIONS, MIN_VARIATIONS

    with st.expander("Variations: several versions at once"):
        st.caption("Queue versions of this video that differ in one setting, then compare them side by side. "
                   "Every other setting (the seed too, unless the seed is what varies) stays the same.")
        cols = st.columns([2, 3])
        kind = cols[0].selectbox("Vary", list(KINDS), key="v_kind", format_func=KINDS.get)
        if kind in ("seeds_next", "seeds_random"):
            cols[1].number_input("How many", min_value=MIN_VARIATIONS, max_value=MAX_VARIATIONS, step=1,
                                 value=DEFAULT_COUNT, key="v_count",
                                 help="Consecutive: the form's seed, then the next ones (so a favourite seed "
                                      "can be found again). Random: a new seed each.")
        elif kind in CHOICES:
            cols[1].multiselect("Values", list(CHOICES[kind]), key=f"v_pick_{kind}",
                                max_selections=MAX_VARIATIONS, placeholder="pick two or more")
        else:
            cols[1].text_input("Values", key=f"v_values_{kind}", placeholder=EXAMPLES.get(kind, ""),
                               help="Two to twelve numbers, separated by commas or spaces.")
        if st.button("Generate variations", key="v_generate", icon=":material/view_module:"):
            _submit(kind, base_spec_builder, problem)


def _submit(kind: str, base_spec_builder: Callable[[], "JobSpec | None"], problem: str | None) -> None:
    from backend.errors import SpecError
    from backend.jobs.variations import expand, submit_group

    with friendly_errors("queue the variations"):
        try:
            base = base_spec_builder()
            if base is None:
                st.error(plain(f"Fix the form first: {problem or 'it is incomplete.'}"))
                return
            axis, values = _values(kind, base)
            variations = expand(base, axis, values)
            group_id, _ = submit_group(generator(), variations, axis)
        except SpecError as exc:
            st.error(plain(f"Variations: {exc.message}"))
            return
        st.session_state.pop("cmp_source", None)
        go(PAGE_COMPARE, group=group_id)

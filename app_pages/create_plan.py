"""The storyboard plan on the Create page: what each keyframe will show and when, from the rule-based
planner, while the user types (no model, instant). The job may use a different count (the motion engine
decides) or the LLM planner; "Review storyboard before animating" lets the user fix it before motion."""

from __future__ import annotations

import streamlit as st

from app_pages.common import plain
from backend.errors import SpecError
from backend.prompting import plan_shot
from backend.spec import JobSpec


def storyboard_preview(prompt: str, negative: str, enhanced: str | None) -> None:
    if not prompt.strip():
        return
    duration = float(st.session_state.get("c_duration") or 4.0)
    preset = st.session_state.get("c_preset") or "standard"
    try:
        count = st.session_state.get("c_keyframes") or JobSpec(prompt=prompt, duration=duration,
                                                                preset=preset).keyframe_count()
        plan = plan_shot(prompt, keyframes=int(count), duration=duration, negative_prompt=negative,
                         enhanced_override=enhanced)
    except SpecError:  # a duration or count the form will refuse with its own message
        return
    st.caption(plain(f"Storyboard plan: {len(plan.keyframes)} keyframes, camera {plan.analysis.camera} "
                     "(the motion engine may change the count; review the keyframes before motion with "
                     "'Review storyboard before animating')"))
    st.dataframe([{"at": f"{k.time:.1f} s", "keyframe prompt": k.prompt} for k in plan.keyframes],
                 hide_index=True, width="stretch")

"""Create page: describe the video, see the prompt analysis and the pre-flight check, Generate."""

from __future__ import annotations

import streamlit as st

from app_pages import create_form as form
from app_pages import create_inputs as inputs
from app_pages.common import PAGE_JOB, friendly_errors, generator, go, plain, watch
from app_pages.create_plan import storyboard_preview
from app_pages.create_state import apply_reuse, form_values, remember_form
from app_pages.create_storyboard import storyboard_settings
from app_pages.preflight_view import preflight_panel
from app_pages.saved_settings import save_last, saved_settings_section
from app_pages.variations import variations_controls
from backend.errors import SpecError
from backend.prompting import analyze_prompt

st.title("Create")
reuse = st.session_state.pop("reuse_spec", None)
if isinstance(reuse, dict):
    apply_reuse(reuse)
    st.toast("Settings loaded from the gallery.")
form.init_form()
saved_settings_section()

form.mode_and_models()
mode = st.session_state["c_mode"]
if mode == "i2v":
    inputs.start_image()
elif mode == "extend":
    inputs.source_video()

st.text_area("Prompt", key="c_prompt", height=90, max_chars=2000,
             placeholder="ocean waves crashing on a beach at golden hour")
st.text_area("Negative prompt", key="c_negative", height=68, max_chars=2000,
             placeholder="what to avoid (optional)")

# --- the prompt analysis, live --------------------------------------------------------------
prompt = st.session_state["c_prompt"] or ""
analysis = analyze_prompt(prompt, st.session_state["c_negative"] or "")
if st.session_state.get("c_enhanced_from") != prompt:
    # A new prompt replaces the enhanced text (edits to the old one no longer apply).
    st.session_state["c_enhanced"] = analysis.enhanced_prompt if prompt.strip() else ""
    st.session_state["c_enhanced_from"] = prompt
with st.expander("Prompt analysis", expanded=bool(prompt.strip())):
    cols = st.columns(5)
    for col, (label, value) in zip(cols, (("Subject", analysis.subject), ("Setting", analysis.setting),
                                          ("Action", analysis.action), ("Style", analysis.style),
                                          ("Lighting", analysis.lighting))):
        col.caption(label)
        col.markdown(f"**{plain(value)}**" if prompt.strip() else "—")
    st.text_area("Enhanced prompt (editable)", key="c_enhanced", height=90, max_chars=2000,
                 help="What the keyframes are drawn from. Edit it to take control; your prompt stays the "
                      "video's title.")
    st.caption("Negative prompt used")
    st.text(analysis.negative_prompt)
    edited = (st.session_state.get("c_enhanced") or "").strip()
    use_edit = bool(prompt.strip()) and bool(edited) and edited != analysis.enhanced_prompt
    storyboard_preview(prompt, st.session_state["c_negative"] or "", edited if use_edit else None)
if use_edit:
    st.caption("Your edited enhanced prompt will be used for the keyframes and motion.")

# --- settings -------------------------------------------------------------------------------
form.video_settings()
form.advanced_settings()
storyboard_settings()
form.finishing_settings(inputs.lut)
remember_form()

# --- pre-flight, then Generate --------------------------------------------------------------
spec = problem = None
try:
    spec = form.build_spec(prompt, enhanced=edited if use_edit else None).validate()
except SpecError as exc:
    label = form.FIELD_LABELS.get(exc.field, exc.field)
    problem = f"{label}: {exc.message}"
except ValueError as exc:  # e.g. a malformed size from an old job's settings
    problem = str(exc)
wait = preflight_panel(spec, problem)

clicked = st.button("Generate", key="c_generate", type="primary", icon=":material/movie:", disabled=wait is not None,
                    help=wait)
if wait is not None:
    st.caption(plain(wait))
if clicked and wait is None:
    if spec is None:
        st.error(plain(problem or "The form is incomplete."))
    else:
        with friendly_errors("queue the job"):
            try:
                job_id = generator().submit(spec)
            except SpecError as exc:  # e.g. an uploaded input that disappeared meanwhile
                st.error(plain(f"{form.FIELD_LABELS.get(exc.field, exc.field)}: {exc.message}"))
            else:
                save_last(form_values())
                watch(job_id)
                go(PAGE_JOB, job=job_id)

# Variations queue as jobs too: not while models are missing (``wait`` says which).
variations_controls(lambda: spec if wait is None else None, wait or problem)

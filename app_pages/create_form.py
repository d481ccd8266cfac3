"""The Create form's settings: defaults, widgets, "reuse settings" and turning them into a JobSpec.

Widget values live in st.session_state under ``c_*`` keys. Defaults are set once with setdefault
(so widgets take ``key=`` only), and ``keep_form_state`` re-saves them on every page so a visit to
another page does not wipe the form.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import streamlit as st

from app_pages.common import TINY_LABEL
from backend.spec import (
    ENGINES,
    GRADES,
    INTERPOLATIONS,
    MAX_DURATION_S,
    MAX_SEED,
    PRESET_NAMES,
    STABILIZERS,
    UPSCALERS,
    FinishOptions,
    JobSpec,
    upgrade_spec_dict,
)

MODE_LABELS = {"t2v": "Text → video", "i2v": "Image → video", "extend": "Extend a video"}
MODEL_LABELS = {"default": "Real models", "tiny": TINY_LABEL}
PRESET_LABELS = {"quick": "Quick", "standard": "Standard", "high": "High"}
ENGINE_LABELS = {
    "auto": "Automatic: the most storyboard-faithful engine that fits",
    "ltx": "LTX-Video: every keyframe at its moment",
    "wan": "Wan first-last-frame: each segment from keyframe to keyframe",
    "skyreels": "SkyReels-V2: one long shot (first keyframe only)",
    "svd": "Stable Video Diffusion XT: first frame only, crossfaded joins",
    "cogvideox": "CogVideoX image-to-video: first frame only, crossfaded joins",
}
SIZES: dict[str, str] = {
    "1920x1080": "1920×1080 · 16:9 1080p",
    "1280x720": "1280×720 · 16:9 720p",
    "854x480": "854×480 · 16:9 480p",
    "1080x1920": "1080×1920 · 9:16 vertical",
    "1080x1080": "1080×1080 · 1:1 square",
    "256x144": "256×144 · tiny (quick tests)",
}
FPS_CHOICES = (8, 12, 16, 24, 25, 30, 48, 60)
# What the tiny test models are best tried at: seconds of noise, not minutes.
TINY_DEFAULTS = {"c_size": "256x144", "c_duration": 2.0, "c_fps": 8}
REAL_DEFAULTS = {"c_size": "1920x1080", "c_duration": 4.0, "c_fps": 24}

_FINISH = FinishOptions()
DEFAULTS: dict[str, Any] = {
    "c_mode": "t2v", "c_models": "default", "c_prompt": "", "c_negative": "", "c_enhanced": "", "c_preset": "standard",
    **REAL_DEFAULTS, "c_seed_random": True, "c_seed": 42, "c_guidance": None, "c_steps": None,
    "c_keyframes": None, "c_engine": "auto", "c_motion": 0.5, "c_grade": _FINISH.grade, "c_sharpen": _FINISH.sharpen,
    "c_stabilize": _FINISH.stabilize, "c_interpolation": _FINISH.interpolation, "c_aspect": _FINISH.aspect,
    "c_crf": _FINISH.crf, "c_upscale": _FINISH.upscale, "c_colour_match": _FINISH.colour_match == "auto",
    "c_deflicker": _FINISH.deflicker > 0,
}
DEFLICKER_WINDOW = 5  # frames, when the Deflicker toggle is on
INTERPOLATION_LABELS = {
    "flow": "Optical flow (default, no download)", "rife": "RIFE (AI model)",
    "minterpolate": "ffmpeg minterpolate", "blend": "Blend (cross-fade)", "none": "None (repeat/drop frames)",
}
UPSCALE_LABELS = {"lanczos": "Lanczos", "model": "AI upscaler (Real-ESRGAN)"}
FIELD_LABELS = {
    "prompt": "Prompt", "negative_prompt": "Negative prompt", "duration": "Duration", "fps": "Frame rate",
    "width": "Output size", "height": "Output size", "seed": "Seed", "guidance": "Guidance", "steps": "Steps",
    "keyframes": "Keyframes", "motion_strength": "Motion strength", "image": "Start image", "video": "Video to extend",
    "finish.lut": "Colour LUT",
}


def init_form() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def keep_form_state() -> None:
    """Re-save the form's values so Streamlit's widget clean-up keeps them while another page shows."""
    for key in DEFAULTS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def apply_reuse(spec: dict[str, Any]) -> None:
    """Fill the form from an earlier job's spec (Gallery → "reuse settings")."""
    spec = upgrade_spec_dict(spec)  # a job stored before schema 2 says "post" for "finish"
    finish = spec.get("finish") or {}
    size = f"{spec.get('width', 1920)}x{spec.get('height', 1080)}"
    values = {
        "c_mode": spec.get("mode"), "c_models": spec.get("model_set"), "c_prompt": spec.get("prompt"),
        "c_negative": spec.get("negative_prompt"), "c_preset": spec.get("preset"), "c_duration": spec.get("duration"),
        "c_fps": spec.get("fps"), "c_size": size, "c_seed_random": spec.get("seed") is None,
        "c_seed": spec.get("seed"), "c_guidance": spec.get("guidance"), "c_steps": spec.get("steps"),
        "c_keyframes": spec.get("keyframes"), "c_engine": spec.get("engine"),
        "c_motion": spec.get("motion_strength"), "c_grade": finish.get("grade"), "c_sharpen": finish.get("sharpen"),
        "c_stabilize": finish.get("stabilize"), "c_interpolation": finish.get("interpolation"),
        "c_aspect": finish.get("aspect"), "c_crf": finish.get("crf"), "c_upscale": finish.get("upscale"),
        "c_colour_match": None if "colour_match" not in finish else finish["colour_match"] == "auto",
        "c_deflicker": None if "deflicker" not in finish else bool(finish["deflicker"]),
    }
    for key, value in values.items():
        if value is not None or key in ("c_guidance", "c_steps", "c_keyframes"):
            st.session_state[key] = value
    if size not in SIZES:
        st.session_state["c_custom_size"] = size
    st.session_state.pop("c_enhanced_from", None)  # re-derive the enhanced prompt from the reused one
    for kind in ("image", "video"):
        if spec.get(kind):
            st.session_state[f"c_stored_{kind}"] = {"path": spec[kind], "name": "(input of an earlier job)",
                                                    "summary": "", "file_id": None}
    if finish.get("lut"):
        st.session_state["c_stored_lut"] = {"path": finish["lut"], "name": "(LUT of an earlier job)",
                                            "summary": "", "file_id": None}


def _models_changed() -> None:
    st.session_state.update(TINY_DEFAULTS if st.session_state["c_models"] == "tiny" else REAL_DEFAULTS)


def _roll_seed() -> None:
    st.session_state["c_seed"] = secrets.randbelow(MAX_SEED + 1)
    st.session_state["c_seed_random"] = False


def mode_and_models() -> None:
    cols = st.columns([3, 2])
    cols[0].radio("Mode", list(MODE_LABELS), format_func=MODE_LABELS.get, key="c_mode", horizontal=True)
    cols[1].radio("Models", list(MODEL_LABELS), format_func=MODEL_LABELS.get, key="c_models", horizontal=True,
                  on_change=_models_changed,
                  help="The test models have random weights: the whole flow runs on any machine in about a "
                       "minute, but the video is noise.")
    if st.session_state["c_models"] == "tiny":
        st.warning(f"{TINY_LABEL}. Use them to try the studio on any machine; pick Real models for real videos.")


def video_settings() -> None:
    st.radio("Quality preset", list(PRESET_NAMES), format_func=PRESET_LABELS.get, key="c_preset", horizontal=True,
             help="Quick: fewer steps and keyframes. High: more of both (slower).")
    cols = st.columns(4)
    cols[0].number_input("Duration (s)", min_value=0.5, max_value=MAX_DURATION_S, step=0.5, key="c_duration")
    fps_choices = sorted({*FPS_CHOICES, int(st.session_state["c_fps"])})  # e.g. 10 fps from a CLI job
    cols[1].selectbox("Frame rate", fps_choices, key="c_fps", format_func=lambda f: f"{f} fps")
    sizes = dict(SIZES)
    custom = st.session_state.get("c_custom_size")
    if custom:
        sizes[custom] = custom.replace("x", "×") + " · from an earlier job"
    cols[2].selectbox("Output size", list(sizes), format_func=sizes.get, key="c_size")
    cols[3].radio("Fit to size", ["fit", "fill"], key="c_aspect", horizontal=True,
                  format_func={"fit": "Pad", "fill": "Crop"}.get,
                  help="Pad keeps the whole picture (bars where the aspect differs); Crop fills the frame. "
                       "Never stretched.")
    seed_cols = st.columns([2, 3, 1])
    seed_cols[0].toggle("Random seed", key="c_seed_random")
    seed_cols[1].number_input("Seed", min_value=0, max_value=MAX_SEED, step=1, key="c_seed",
                              disabled=st.session_state["c_seed_random"], label_visibility="collapsed")
    seed_cols[2].button("", key="c_dice", icon=":material/casino:", on_click=_roll_seed,
                        help="Roll the dice: pick a new fixed seed")


def advanced_settings() -> None:
    with st.expander("Advanced"):
        cols = st.columns(3)
        cols[0].number_input("Guidance", min_value=0.0, max_value=30.0, step=0.5, key="c_guidance",
                             placeholder="preset default", help="Empty = the preset's value.")
        cols[1].number_input("Steps", min_value=1, max_value=150, step=1, key="c_steps",
                             placeholder="preset default", help="Empty = the preset's keyframe and motion steps.")
        cols[2].number_input("Keyframes", min_value=1, max_value=16, step=1, key="c_keyframes",
                             placeholder="from duration", help="Empty = derived from the duration and preset.")
        cols = st.columns(2)
        cols[0].selectbox("Motion engine", list(ENGINES), format_func=lambda e: ENGINE_LABELS.get(e, e),
                          key="c_engine")
        cols[1].slider("Motion strength", 0.0, 1.0, step=0.05, key="c_motion",
                       help="0 = nearly still, 1 = lots of motion.")


def finishing_settings(lut_section: Callable[[], None]) -> None:
    """Grade, LUT (``lut_section`` draws it inside the expander), sharpen, stabilise, interpolation."""
    with st.expander("Finishing"):
        cols = st.columns(2)
        cols[0].selectbox("Colour grade", list(GRADES), key="c_grade", format_func=str.capitalize)
        cols[1].slider("Sharpen", 0.0, 3.0, step=0.1, key="c_sharpen", help="0 switches sharpening off.")
        cols = st.columns(3)
        cols[0].selectbox("Stabilise", list(STABILIZERS), key="c_stabilize")
        cols[1].selectbox("Frame interpolation", list(INTERPOLATIONS), key="c_interpolation",
                          format_func=lambda m: INTERPOLATION_LABELS.get(m, m),
                          help="How in-between frames are made when the output rate is higher: optical flow "
                               "follows the motion; RIFE needs its model downloaded; blend cross-fades.")
        cols[2].slider("Quality (CRF, lower = better)", 12, 30, key="c_crf")
        cols = st.columns(3)
        cols[0].selectbox("Upscaler", list(UPSCALERS), key="c_upscale", format_func=lambda u: UPSCALE_LABELS.get(u, u),
                          help="AI upscaler: a Real-ESRGAN model adds detail before the resize (needs the model "
                               "downloaded); Lanczos: a sharp classic resize.")
        cols[1].toggle("Colour matching", key="c_colour_match",
                       help="Match each later segment's colour to the first, so long videos do not drift.")
        cols[2].toggle("Deflicker", key="c_deflicker",
                       help=f"Even out brightness flicker over {DEFLICKER_WINDOW} frames (ffmpeg deflicker).")
        lut_section()


def stored_path(kind: str) -> str | None:
    stored = st.session_state.get(f"c_stored_{kind}")
    return stored.get("path") if isinstance(stored, dict) else None


def build_spec(prompt: str, enhanced: str | None = None) -> JobSpec:
    """The JobSpec the form describes (validated by the caller)."""
    state = st.session_state
    width, height = (int(v) for v in str(state["c_size"]).split("x"))
    mode = state["c_mode"]
    finish = FinishOptions(
        interpolation=state["c_interpolation"], aspect=state["c_aspect"], grade=state["c_grade"],
        lut=stored_path("lut"), sharpen=float(state["c_sharpen"]), stabilize=state["c_stabilize"],
        crf=int(state["c_crf"]), upscale=state["c_upscale"],
        colour_match="auto" if state["c_colour_match"] else "off",
        deflicker=DEFLICKER_WINDOW if state["c_deflicker"] else 0,
    )
    return JobSpec(
        prompt=prompt, enhanced_prompt=enhanced, mode=mode, negative_prompt=state["c_negative"] or "",
        preset=state["c_preset"],
        duration=float(state["c_duration"]), fps=int(state["c_fps"]), width=width, height=height,
        seed=None if state["c_seed_random"] else int(state["c_seed"]),
        guidance=None if state["c_guidance"] is None else float(state["c_guidance"]),
        steps=None if state["c_steps"] is None else int(state["c_steps"]),
        keyframes=None if state["c_keyframes"] is None else int(state["c_keyframes"]),
        engine=state["c_engine"], motion_strength=float(state["c_motion"]),
        image=stored_path("image") if mode == "i2v" else None,
        video=stored_path("video") if mode == "extend" else None,
        model_set=state["c_models"], finish=finish,
    )

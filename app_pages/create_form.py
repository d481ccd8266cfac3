"""The Create form's settings: defaults, widgets, help texts, and turning them into a JobSpec.

Widget values live in st.session_state under ``c_*`` keys. Defaults are set once with setdefault
(so widgets take ``key=`` only); ``create_state`` keeps them across page visits and fills them from an
earlier job ("reuse settings") or a saved preset.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import streamlit as st

from app_pages.common import TINY_LABEL
from app_pages.create_storyboard import lora_choices
from backend.spec import (
    ENGINES,
    GRADES,
    INTERPOLATIONS,
    MAX_DURATION_S,
    MAX_SEED,
    PRESET_NAMES,
    PRESETS,
    STABILIZERS,
    UPSCALERS,
    FinishOptions,
    JobSpec,
)
from backend.stages.filtergraph import GRADES as GRADE_LOOKS

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
DEFLICKER_WINDOW = 5  # frames, when the Deflicker toggle is on
CRF_RANGE = (12, 30)  # the slider's usual range; a reused job's value outside it widens it

_FINISH = FinishOptions()
_SPEC = JobSpec(prompt="")
DEFAULTS: dict[str, Any] = {
    "c_mode": "t2v", "c_models": "default", "c_prompt": "", "c_negative": "", "c_enhanced": "", "c_preset": "standard",
    **REAL_DEFAULTS, "c_seed_random": True, "c_seed": 42, "c_guidance": None, "c_steps": None,
    "c_keyframes": None, "c_engine": "auto", "c_motion": 0.5, "c_grade": _FINISH.grade, "c_sharpen": _FINISH.sharpen,
    "c_stabilize": _FINISH.stabilize, "c_interpolation": _FINISH.interpolation, "c_aspect": _FINISH.aspect,
    "c_crf": _FINISH.crf, "c_upscale": _FINISH.upscale, "c_colour_match": _FINISH.colour_match == "auto",
    "c_deflicker": _FINISH.deflicker > 0, "c_review": _SPEC.review, "c_planner": _SPEC.planner,
    "c_consistency": _SPEC.consistency, "c_loras": [],
    # No widget: what a reused job asked for that the form has no control for, carried through unchanged.
    "c_encoder": _FINISH.encoder, "c_deflicker_window": DEFLICKER_WINDOW,
}
INTERPOLATION_LABELS = {
    "flow": "Optical flow (default, no download)", "rife": "RIFE (AI model)",
    "minterpolate": "ffmpeg minterpolate", "blend": "Blend (cross-fade)", "none": "None (repeat/drop frames)",
}
UPSCALE_LABELS = {"lanczos": "Lanczos", "model": "AI upscaler (Real-ESRGAN)"}
STABILIZE_LABELS = {"off": "Off", "vidstab": "vid.stab (two passes, smoothest)", "deshake": "deshake (one pass)"}
FIELD_LABELS = {
    "prompt": "Prompt", "negative_prompt": "Negative prompt", "duration": "Duration", "fps": "Frame rate",
    "width": "Output size", "height": "Output size", "seed": "Seed", "guidance": "Guidance", "steps": "Steps",
    "keyframes": "Keyframes", "motion_strength": "Motion strength", "image": "Start image", "video": "Video to extend",
    "finish.lut": "Colour LUT", "loras": "LoRAs", "planner": "Storyboard planner", "consistency": "Consistency",
}

HELP = {
    "preset": "Quick: fewer steps and keyframes, a distilled model where there is one (fastest, rougher). "
              "Standard: balanced. High: more steps and keyframes (slower, finer detail).",
    "guidance": "How literally the keyframes follow the prompt. Higher (8–12) = closer to the words but harsher "
                "colours and artefacts; lower (3–5) = looser, more natural. Empty = the preset's value.",
    "steps": "Denoising steps for keyframes and motion. More = finer detail but proportionally slower; below "
             "about 15 looks unfinished. Empty = the preset's (distilled models keep their own).",
    "keyframes": "How many storyboard pictures the motion is built between. More = closer control of what "
                 "happens when, more time. Empty = one every few seconds of the duration.",
    "motion": "How much moves between keyframes. 0 = nearly still and stable; 1 = lots of motion, livelier but "
              "with more warping.",
    "stabilize": "Off: as generated. vid.stab: measures the shake in a first pass, then smooths it (best, "
                 "crops the edges slightly). deshake: one faster pass for light jitter.",
    "grade": "The colour look applied after generation (Neutral: a light lift; None: untouched).",
    "sharpen": "Unsharp mask after scaling: crisper edges; high values add halos. 0 switches it off.",
    "crf": "x264 quality: lower = better picture and a bigger file (18 is visually lossless; +6 ≈ half the size).",
}


def init_form() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def _models_changed() -> None:
    """Switch to the other set's duration/fps/size, but only where the user left the previous set's default."""
    tiny = st.session_state["c_models"] == "tiny"
    new, old = (TINY_DEFAULTS, REAL_DEFAULTS) if tiny else (REAL_DEFAULTS, TINY_DEFAULTS)
    for key, value in new.items():
        if st.session_state.get(key) == old[key]:
            st.session_state[key] = value


def _roll_seed() -> None:
    st.session_state["c_seed"] = secrets.randbelow(MAX_SEED + 1)
    st.session_state["c_seed_random"] = False


def mode_and_models() -> None:
    cols = st.columns([3, 2])
    cols[0].radio("Mode", list(MODE_LABELS), format_func=MODE_LABELS.get, key="c_mode", horizontal=True)
    cols[1].radio("Models", list(MODEL_LABELS), format_func=MODEL_LABELS.get, key="c_models", horizontal=True,
                  on_change=_models_changed,
                  help="The test models have random weights: the whole flow runs on any machine in about a "
                       "minute, but the video is noise. Switching keeps the duration, rate and size you chose.")
    notice = st.container()  # always there, so the elements below keep their place (and expanders stay open)
    if st.session_state["c_models"] == "tiny":
        notice.warning(f"{TINY_LABEL}. Use them to try the studio on any machine; pick Real models for real videos.")


def video_settings() -> None:
    st.radio("Quality preset", list(PRESET_NAMES), format_func=PRESET_LABELS.get, key="c_preset", horizontal=True,
             help=HELP["preset"])
    cols = st.columns(4)
    cols[0].number_input("Duration (s)", min_value=0.5, max_value=MAX_DURATION_S, step=0.5, key="c_duration",
                         help="Seconds of new video (for Extend: of the continuation).")
    fps_choices = sorted({*FPS_CHOICES, int(st.session_state["c_fps"])})  # e.g. 10 fps from a CLI job
    cols[1].selectbox("Frame rate", fps_choices, key="c_fps", format_func=lambda f: f"{f} fps",
                      help="Frames per second of the delivered file; in-between frames are made by the "
                           "frame interpolation under Finishing.")
    sizes = dict(SIZES)
    custom = st.session_state.get("c_custom_size")
    if custom:
        sizes[custom] = custom.replace("x", "×") + " · from an earlier job"
    cols[2].selectbox("Output size", list(sizes), format_func=sizes.get, key="c_size",
                      help="The delivered size; the models draw at their native size and are scaled to it.")
    cols[3].radio("Fit to size", ["fit", "fill"], key="c_aspect", horizontal=True,
                  format_func={"fit": "Pad", "fill": "Crop"}.get,
                  help="Pad keeps the whole picture (bars where the aspect differs); Crop fills the frame. "
                       "Never stretched.")
    seed_cols = st.columns([2, 3, 1])
    seed_cols[0].toggle("Random seed", key="c_seed_random",
                        help="Off: the same seed and settings give the same video again.")
    seed_cols[1].number_input("Seed", min_value=0, max_value=MAX_SEED, step=1, key="c_seed",
                              disabled=st.session_state["c_seed_random"], label_visibility="collapsed")
    seed_cols[2].button("", key="c_dice", icon=":material/casino:", on_click=_roll_seed,
                        help="Roll the dice: pick a new fixed seed")


def advanced_settings() -> None:
    preset = PRESETS.get(st.session_state["c_preset"], PRESETS["standard"])
    with st.expander("Advanced", key="c_exp_advanced"):
        cols = st.columns(3)
        # value=None: an empty field is a real state, "use the preset's value" (clearing never leaves 0 or 1).
        cols[0].number_input("Guidance", min_value=0.0, max_value=30.0, step=0.5, key="c_guidance", value=None,
                             placeholder=f"preset default ({preset.keyframe_guidance:g})", help=HELP["guidance"])
        cols[1].number_input("Steps", min_value=1, max_value=150, step=1, key="c_steps", value=None,
                             placeholder=f"preset default ({preset.keyframe_steps}/{preset.motion_steps})",
                             help=HELP["steps"])
        cols[2].number_input("Keyframes", min_value=1, max_value=16, step=1, key="c_keyframes", value=None,
                             placeholder="preset default (from duration)", help=HELP["keyframes"])
        cols = st.columns(2)
        cols[0].selectbox("Motion engine", list(ENGINES), format_func=lambda e: ENGINE_LABELS.get(e, e),
                          key="c_engine", help="The video model that animates between the keyframes.")
        cols[1].slider("Motion strength", 0.0, 1.0, step=0.05, key="c_motion", help=HELP["motion"])


def _grade_label(name: str) -> str:
    look = GRADE_LOOKS.get(name)
    return f"{name.capitalize()} — {look.description}" if look else name.capitalize()


def finishing_settings(lut_section: Callable[[], None]) -> None:
    """Grade, LUT (``lut_section`` draws it inside the expander), sharpen, stabilise, interpolation."""
    with st.expander("Finishing", key="c_exp_finishing"):
        cols = st.columns(2)
        cols[0].selectbox("Colour grade", list(GRADES), key="c_grade", format_func=_grade_label, help=HELP["grade"])
        cols[1].slider("Sharpen", 0.0, 3.0, step=0.1, key="c_sharpen", help=HELP["sharpen"])
        cols = st.columns(3)
        cols[0].selectbox("Stabilise", list(STABILIZERS), key="c_stabilize",
                          format_func=lambda m: STABILIZE_LABELS.get(m, m), help=HELP["stabilize"])
        cols[1].selectbox("Frame interpolation", list(INTERPOLATIONS), key="c_interpolation",
                          format_func=lambda m: INTERPOLATION_LABELS.get(m, m),
                          help="How in-between frames are made when the output rate is higher: optical flow "
                               "follows the motion; RIFE needs its model downloaded; blend cross-fades.")
        crf = int(st.session_state["c_crf"])
        cols[2].slider("Quality (CRF, lower = better)", min(CRF_RANGE[0], crf), max(CRF_RANGE[1], crf), key="c_crf",
                       help=HELP["crf"])
        cols = st.columns(3)
        cols[0].selectbox("Upscaler", list(UPSCALERS), key="c_upscale", format_func=lambda u: UPSCALE_LABELS.get(u, u),
                          help="AI upscaler: a Real-ESRGAN model adds detail before the resize (needs the model "
                               "downloaded); Lanczos: a sharp classic resize.")
        cols[1].toggle("Colour matching", key="c_colour_match",
                       help="Match each later segment's colour to the first, so long videos do not drift.")
        window = int(st.session_state["c_deflicker_window"])
        cols[2].toggle("Deflicker", key="c_deflicker",
                       help=f"Even out brightness flicker over {window} frames (ffmpeg deflicker).")
        if st.session_state["c_encoder"] != _FINISH.encoder:
            st.caption(f"Encoder from the earlier job: {st.session_state['c_encoder']}")
        lut_section()


def stored_path(kind: str) -> str | None:
    stored = st.session_state.get(f"c_stored_{kind}")
    return stored.get("path") if isinstance(stored, dict) else None


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else kind(value)


def build_spec(prompt: str, enhanced: str | None = None) -> JobSpec:
    """The JobSpec the form describes (validated by the caller)."""
    state = st.session_state
    width, height = (int(v) for v in str(state["c_size"]).split("x"))
    mode = state["c_mode"]
    finish = FinishOptions(
        interpolation=state["c_interpolation"], aspect=state["c_aspect"], grade=state["c_grade"],
        lut=stored_path("lut"), sharpen=float(state["c_sharpen"]), stabilize=state["c_stabilize"],
        crf=int(state["c_crf"]), encoder=state["c_encoder"], upscale=state["c_upscale"],
        colour_match="auto" if state["c_colour_match"] else "off",
        deflicker=int(state["c_deflicker_window"]) if state["c_deflicker"] else 0,
    )
    return JobSpec(
        prompt=prompt, enhanced_prompt=enhanced, mode=mode, negative_prompt=state["c_negative"] or "",
        preset=state["c_preset"],
        duration=float(state["c_duration"]), fps=int(state["c_fps"]), width=width, height=height,
        seed=None if state["c_seed_random"] else int(state["c_seed"]),
        guidance=_optional(state["c_guidance"], float), steps=_optional(state["c_steps"], int),
        keyframes=_optional(state["c_keyframes"], int),
        engine=state["c_engine"], motion_strength=float(state["c_motion"]),
        image=stored_path("image") if mode == "i2v" else None,
        video=stored_path("video") if mode == "extend" else None,
        model_set=state["c_models"], finish=finish, review=bool(state["c_review"]), planner=state["c_planner"],
        consistency=state["c_consistency"], loras=lora_choices(),
    )

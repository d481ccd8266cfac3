"""The Create form's values across page visits, earlier jobs ("reuse settings") and saved presets.

Streamlit drops a widget's value once a run ends without that widget — on another page, the form's
widgets are gone, and a fragment run there (the live job panel polls every second) followed by a page
switch loses them even when each full run re-saves them. So the form keeps its own copy under a plain
session key (``c_form_memory``, never a widget) and puts back whatever Streamlit dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import streamlit as st

from app_pages.common import generator, safe_file
from app_pages.create_form import DEFAULTS, MODE_LABELS, MODEL_LABELS, SIZES
from app_pages.create_storyboard import LORA_PREFIXES, LORA_TARGET, LORA_WEIGHT
from backend.spec import (
    ASPECT_POLICIES,
    CONSISTENCY,
    ENCODERS,
    ENGINES,
    GRADES,
    INTERPOLATIONS,
    LORA_TARGETS,
    MAX_DEFLICKER,
    MAX_DURATION_S,
    MAX_LORAS,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    PLANNERS,
    PRESET_NAMES,
    STABILIZERS,
    UPSCALERS,
    upgrade_spec_dict,
)

MEMORY = "c_form_memory"
PROMPT_KEYS = ("c_prompt", "c_enhanced")  # left out of named presets (a preset is how, not what)
_SIZE = re.compile(r"\d{2,4}x\d{2,4}")


def form_keys() -> list[str]:
    """Every form value: the fixed fields and each chosen LoRA's weight and target."""
    extra = {k for k in (*st.session_state.get(MEMORY, {}), *st.session_state) if str(k).startswith(LORA_PREFIXES)}
    return [*DEFAULTS, *sorted(extra)]


def keep_form_state(initial: Callable[[], dict[str, Any]] | None = None) -> None:
    """Before any page runs: put back what Streamlit dropped and remember the rest.

    ``initial`` gives a new session its first values (the last-used settings).
    """
    state = st.session_state
    if MEMORY not in state:
        state[MEMORY] = {}
        if initial is not None:
            set_form_values(initial())
    memory = state[MEMORY]
    for key in form_keys():
        if key in state:
            memory[key] = state[key]
            state[key] = state[key]  # a value set this run survives the run's widget clean-up
        elif key in memory:
            state[key] = memory[key]


def remember_form() -> None:
    """After the Create page drew its widgets: remember their values now."""
    memory = st.session_state.setdefault(MEMORY, {})
    memory.update({key: st.session_state[key] for key in form_keys() if key in st.session_state})


def form_values(*, with_prompt: bool = True) -> dict[str, Any]:
    """The form as plain values (for a preset or the last-used settings)."""
    values = {key: st.session_state[key] for key in form_keys() if key in st.session_state}
    values = {k: v for k, v in values.items() if with_prompt or k not in PROMPT_KEYS}
    lut = st.session_state.get("c_stored_lut")
    if isinstance(lut, dict) and lut.get("path"):
        values["c_lut_path"] = lut["path"]
    return values


def set_form_values(values: dict[str, Any]) -> None:
    """Fill the form (call before its widgets are drawn, e.g. from a button's on_click)."""
    state = st.session_state
    memory = state.setdefault(MEMORY, {})
    for store in (state, memory):  # the previous LoRAs' weights and targets go
        for key in [k for k in store if str(k).startswith(LORA_PREFIXES)]:
            del store[key]
    lut = values.get("c_lut_path")
    for key, value in values.items():
        if key in DEFAULTS or key.startswith(LORA_PREFIXES):
            state[key] = value
    if "c_prompt" in values:
        state["c_enhanced_from"] = values["c_prompt"]  # keep the enhanced text as given, not re-derived
    size = values.get("c_size")
    if isinstance(size, str) and size not in SIZES:
        state["c_custom_size"] = size
    if isinstance(lut, str) and safe_file(lut, generator().paths.uploads) is not None:
        state["c_stored_lut"] = {"path": lut, "name": "(the LUT of the saved settings)", "summary": "", "file_id": None}
    elif "c_grade" in values:  # whole settings without a LUT: none
        state.pop("c_stored_lut", None)
    memory.update({k: v for k, v in values.items() if k in state})


# --- checking values that come from a file or an old job --------------------------------------------
def _number(low: float, high: float, *, integer: bool = False, optional: bool = False):
    def check(value: Any) -> bool:
        if value is None:
            return optional
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            return False
        return math.isfinite(value) and low <= value <= high
    return check


def _one_of(choices) -> Any:
    return lambda value: isinstance(value, str) and value in choices


def _text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_PROMPT_CHARS


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


RULES = {
    "c_mode": _one_of(MODE_LABELS), "c_models": _one_of(MODEL_LABELS), "c_prompt": _text, "c_negative": _text,
    "c_enhanced": _text, "c_preset": _one_of(PRESET_NAMES), "c_size": lambda v: isinstance(v, str) and bool(
        _SIZE.fullmatch(v)), "c_duration": _number(0.5, MAX_DURATION_S), "c_fps": _number(4, 60, integer=True),
    "c_seed_random": _flag, "c_seed": _number(0, MAX_SEED, integer=True),
    "c_guidance": _number(0.0, 30.0, optional=True), "c_steps": _number(1, 150, integer=True, optional=True),
    "c_keyframes": _number(1, 16, integer=True, optional=True), "c_engine": _one_of(ENGINES),
    "c_motion": _number(0.0, 1.0), "c_grade": _one_of(GRADES), "c_sharpen": _number(0.0, 3.0),
    "c_stabilize": _one_of(STABILIZERS), "c_interpolation": _one_of(INTERPOLATIONS),
    "c_aspect": _one_of(ASPECT_POLICIES), "c_crf": _number(0, 51, integer=True), "c_upscale": _one_of(UPSCALERS),
    "c_colour_match": _flag, "c_deflicker": _flag, "c_review": _flag, "c_planner": _one_of(PLANNERS),
    "c_consistency": _one_of(CONSISTENCY), "c_encoder": _one_of(ENCODERS),
    "c_deflicker_window": _number(2, MAX_DEFLICKER, integer=True),
    "c_loras": lambda v: isinstance(v, list) and len(v) <= MAX_LORAS and all(
        isinstance(n, str) and n.endswith(".safetensors") and "/" not in n and "\\" not in n for n in v),
    "c_lut_path": lambda v: isinstance(v, str),
}


def clean_values(data: Any) -> dict[str, Any]:
    """The valid form values in ``data`` (anything else is dropped: a bad file must not break the form)."""
    if not isinstance(data, dict):
        return {}
    values = {key: value for key, value in data.items() if key in RULES and RULES[key](value)}
    for name in values.get("c_loras", ()):
        weight, target = data.get(LORA_WEIGHT + name), data.get(LORA_TARGET + name)
        if _number(-2.0, 2.0)(weight):
            values[LORA_WEIGHT + name] = float(weight)
        if _one_of(LORA_TARGETS)(target):
            values[LORA_TARGET + name] = target
    for key, kind in (*((k, float) for k in _FLOATS), *((k, int) for k in _INTS)):
        if values.get(key) is not None:
            values[key] = kind(values[key])  # JSON's 2 for 2.0: the widgets want one number type
    return values


_FLOATS = ("c_duration", "c_guidance", "c_motion", "c_sharpen")
_INTS = ("c_fps", "c_seed", "c_steps", "c_keyframes", "c_crf", "c_deflicker_window")


# --- "reuse settings" -------------------------------------------------------------------------------
def spec_values(spec: dict[str, Any]) -> dict[str, Any]:
    """The form values that reproduce an earlier job's spec exactly (every field)."""
    spec = upgrade_spec_dict(spec)  # a job stored before schema 2 says "post" for "finish"
    finish = spec.get("finish") or {}
    loras = [x for x in spec.get("loras") or () if isinstance(x, dict) and isinstance(x.get("file"), str)]
    deflicker = finish.get("deflicker")
    values = {
        "c_mode": spec.get("mode"), "c_models": spec.get("model_set"), "c_prompt": spec.get("prompt"),
        "c_negative": spec.get("negative_prompt"), "c_preset": spec.get("preset"), "c_duration": spec.get("duration"),
        "c_fps": spec.get("fps"), "c_size": f"{spec.get('width', 1920)}x{spec.get('height', 1080)}",
        "c_seed_random": spec.get("seed") is None, "c_seed": spec.get("seed"), "c_guidance": spec.get("guidance"),
        "c_steps": spec.get("steps"), "c_keyframes": spec.get("keyframes"), "c_engine": spec.get("engine"),
        "c_motion": spec.get("motion_strength"), "c_grade": finish.get("grade"), "c_sharpen": finish.get("sharpen"),
        "c_stabilize": finish.get("stabilize"), "c_interpolation": finish.get("interpolation"),
        "c_aspect": finish.get("aspect"), "c_crf": finish.get("crf"), "c_upscale": finish.get("upscale"),
        "c_encoder": finish.get("encoder"),
        "c_colour_match": None if "colour_match" not in finish else finish["colour_match"] == "auto",
        "c_deflicker": None if deflicker is None else bool(deflicker),
        "c_deflicker_window": deflicker if deflicker else None,
        "c_review": spec.get("review"), "c_planner": spec.get("planner"), "c_consistency": spec.get("consistency"),
        "c_loras": [x["file"] for x in loras],
        **{LORA_WEIGHT + x["file"]: x.get("weight") for x in loras},
        **{LORA_TARGET + x["file"]: x.get("target") for x in loras},
    }
    values = clean_values(values)
    for key in ("c_guidance", "c_steps", "c_keyframes"):  # None is a value here: "the preset's"
        values.setdefault(key, None)
    if isinstance(spec.get("prompt"), str):
        enhanced = spec.get("enhanced_prompt")
        values["c_enhanced"] = enhanced if isinstance(enhanced, str) and enhanced.strip() else None
    return values


def apply_reuse(spec: dict[str, Any]) -> None:
    """Fill the form from an earlier job's spec (Gallery → "Open in Create")."""
    values = spec_values(spec)
    enhanced = values.pop("c_enhanced", None)
    set_form_values(values)
    if enhanced is None:
        st.session_state.pop("c_enhanced_from", None)  # no edit of its own: derive it from the prompt again
    else:
        st.session_state["c_enhanced"] = enhanced  # the job's hand-edited enhanced prompt, as it was
    for kind in ("image", "video"):
        if spec.get(kind):
            st.session_state[f"c_stored_{kind}"] = {"path": spec[kind], "name": "(input of an earlier job)",
                                                    "summary": "", "file_id": None}
    lut = (upgrade_spec_dict(spec).get("finish") or {}).get("lut")
    if lut:
        st.session_state["c_stored_lut"] = {"path": lut, "name": "(LUT of an earlier job)",
                                            "summary": "", "file_id": None}
    else:
        st.session_state.pop("c_stored_lut", None)

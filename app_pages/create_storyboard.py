"""Create page, "Storyboard" section: review before animating, who plans the shots, subject consistency, LoRAs.

LoRA files are listed by name from ``<models>/loras/``; a name is only ever sent in the JobSpec (the
backend resolves it inside that folder), never turned into a path here. Each chosen file has a weight
and a target under ``c_lora_weight::<name>`` and ``c_lora_target::<name>``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from app_pages.common import generator, plain
from backend.spec import CONSISTENCY, LORA_TARGETS, MAX_LORAS, PLANNERS, LoraChoice

log = logging.getLogger("studio.ui")

LORA_FOLDER = "loras"
LORA_WEIGHT, LORA_TARGET = "c_lora_weight::", "c_lora_target::"
LORA_PREFIXES = (LORA_WEIGHT, LORA_TARGET)
DEFAULT_LORA = LoraChoice(file="x.safetensors")
NO_LORAS = "No LoRA files: put .safetensors files in models/loras or upload on the Models page."

PLANNER_LABELS = {"rules": "Rules (instant, no model)", "llm": "Local LLM (richer shot prompts)"}
CONSISTENCY_LABELS = {
    "auto": "Automatic: IP-Adapter when downloaded, else img2img",
    "ip-adapter": "IP-Adapter: every keyframe looks at the first",
    "img2img": "img2img: each keyframe starts from the one before",
    "independent": "Independent: each from text, same seed and style",
}
TARGET_LABELS = {"keyframes": "Keyframes (the pictures)", "motion": "Motion (the video model)"}


def lora_folder() -> Path:
    return generator().paths.models / LORA_FOLDER


def lora_files() -> list[str]:
    """Names of the ``*.safetensors`` files in the LoRA folder (hidden files left out)."""
    try:
        return sorted(p.name for p in lora_folder().glob("*.safetensors") if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        log.warning("cannot list the LoRA folder: %s", exc)
        return []


def lora_choices() -> tuple[LoraChoice, ...]:
    """The LoRAs the form has chosen, with their weights and targets."""
    state = st.session_state
    return tuple(LoraChoice(file=name, weight=float(state.get(LORA_WEIGHT + name, DEFAULT_LORA.weight)),
                            target=str(state.get(LORA_TARGET + name, DEFAULT_LORA.target)))
                 for name in state.get("c_loras") or ())


def storyboard_settings() -> None:
    with st.expander("Storyboard", key="c_exp_storyboard"):
        st.toggle("Review storyboard before animating", key="c_review",
                  help="The job stops after the keyframes so you can redraw or edit them, then you press Animate.")
        cols = st.columns(2)
        cols[0].selectbox("Storyboard planner", list(PLANNERS), key="c_planner",
                          format_func=lambda p: PLANNER_LABELS.get(p, p),
                          help="Who writes each keyframe's prompt: rules (instant) or a local instruct model "
                               "(downloaded like other models; its plan falls back to the rules if it is invalid).")
        cols[1].selectbox("Subject consistency", list(CONSISTENCY), key="c_consistency",
                          format_func=lambda c: CONSISTENCY_LABELS.get(c, c),
                          help="How later keyframes keep the same subject and place as the first one.")
        _loras()


def _loras() -> None:
    files = lora_files()
    chosen = [name for name in st.session_state.get("c_loras") or () if isinstance(name, str)]
    missing = [name for name in chosen if name not in files]
    if not files and not chosen:
        st.caption(NO_LORAS)
        return
    st.multiselect("LoRAs", sorted({*files, *chosen}), key="c_loras", max_selections=MAX_LORAS,
                   format_func=lambda n: f"{n} (missing)" if n in missing else n,
                   help=f"Style or subject add-ons from models/loras/ (at most {MAX_LORAS}), each applied to the "
                        "keyframe model or to the motion model.")
    for name in missing:
        st.warning(plain(f"{name} is no longer in models/loras: put it back or remove it from the list."))
    for name in st.session_state.get("c_loras") or ():
        st.session_state.setdefault(LORA_WEIGHT + name, DEFAULT_LORA.weight)
        st.session_state.setdefault(LORA_TARGET + name, DEFAULT_LORA.target)
        cols = st.columns([3, 2])
        cols[0].slider(plain(f"Weight of {name}"), -2.0, 2.0, step=0.05, key=LORA_WEIGHT + name,
                       help="How strongly the LoRA applies: 0.6–1.0 is typical; negative values push away from it.")
        cols[1].radio(plain(f"Apply {name} to"), list(LORA_TARGETS), key=LORA_TARGET + name, horizontal=True,
                      format_func=lambda t: TARGET_LABELS.get(t, t))

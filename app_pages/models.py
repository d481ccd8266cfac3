"""Models page: each model with its status, size and needs; download, verify, remove; disk usage."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages import model_actions as actions
from app_pages.common import TINY_LABEL, fmt_bytes, friendly_errors, generator, plain
from backend.errors import ModelFolderError
from backend.memory.plans import min_vram_by_level
from backend.models import store
from backend.models.registry import MODEL_SETS, MODELS, ModelRef
from backend.monitor import folder_size, read_disk

LEVEL_LABELS = {"gpu": "all on the GPU", "model_offload": "model offload", "group_offload": "group offload",
                "sequential_offload": "sequential offload"}


def needs(ref: ModelRef) -> list[str]:
    """What the model needs and does, one short line each."""
    roles = sorted({role for roles in MODEL_SETS.values() for role, key in roles.items() if key == ref.key})
    lines = [f"Role: {', '.join(roles) if roles else 'optional'} · native {ref.width}×{ref.height}"
             + (f", {ref.frames} frames @ {ref.fps} fps" if ref.frames > 1 else "")]
    vram = min_vram_by_level(ref)
    if vram:
        least = min(vram, key=vram.get)
        lines.append(f"VRAM: {vram.get('gpu', 0):.1f} GB {LEVEL_LABELS['gpu']}, down to {vram[least]:.1f} GB "
                     f"with {LEVEL_LABELS.get(least, least)}")
    elif ref.is_tiny:
        lines.append("Runs on the CPU in seconds; built on this machine, nothing to download.")
    if ref.repo_id:
        lines.append(f"Download: {ref.size_gb:.1f} GB from {ref.repo_id}")
    if ref.licence:
        lines.append(f"Licence: {ref.licence}")
    if ref.gated:
        lines.append("Gated: accept the licence on its Hugging Face page and set HF_TOKEN before downloading.")
    lines.extend(ref.notes)
    return lines


def model_card(ref: ModelRef) -> None:
    root = generator().paths.models
    info = store.status(ref, root)
    task = generator().downloads.task(ref)
    busy = task is not None and task.running
    with st.container(border=True):
        cols = st.columns([4, 2, 2])
        cols[0].markdown(f"**{plain(ref.label or ref.key)}** `{ref.key}`")
        for line in needs(ref):
            cols[0].caption(plain(line))
        cols[1].metric("Status", info.state)
        cols[2].metric("On disk", fmt_bytes(info.bytes_on_disk))
        actions.download_status(ref)
        buttons = st.columns(4)
        if not busy and not info.ready:
            actions.download_button(ref, buttons[0], resume=info.state == "partial")
        if buttons[1].button("Verify", key=f"m_verify_{ref.key}", disabled=busy):
            with friendly_errors("verify the model"):
                problems = store.verify(ref, root)
                st.session_state[f"m_result_{ref.key}"] = (
                    ("error", " ".join(problems)) if problems else ("success", "All files present and complete."))
        if not busy and (info.bytes_on_disk or info.state == "linked"):
            actions.remove_button(ref, buttons[2], buttons[3])
        if not busy and not ref.is_tiny and not info.ready:
            link_folder(ref, root)
        result = st.session_state.get(f"m_result_{ref.key}")
        if result:
            kind, text = result
            (st.error if kind == "error" else st.success)(plain(text))
            if kind == "error" and info.ready and not busy and info.state != "linked":
                actions.download_button(ref, st, resume=True, repair=True)  # download replaces damaged files


def link_folder(ref: "ModelRef", root: Path) -> None:
    """Use a diffusers folder the user already has (checked, never copied) instead of downloading."""
    with st.expander("Use a folder already on disk"):
        folder = st.text_input("Folder with model_index.json", key=f"m_link_path_{ref.key}",
                               placeholder="/path/to/stable-video-diffusion-img2vid-xt")
        if st.button("Use this folder", key=f"m_link_{ref.key}", disabled=not folder.strip()):
            with friendly_errors("use that folder"):
                try:
                    linked = store.link(ref, Path(folder.strip()), root)
                except ModelFolderError as exc:
                    st.session_state[f"m_result_{ref.key}"] = ("error", str(exc))
                else:
                    st.session_state[f"m_result_{ref.key}"] = ("success", f"Using {linked}.")
                st.rerun()


def disk_usage() -> None:
    root = generator().paths.models
    disk = read_disk("models", root)
    cols = st.columns(3)
    cols[0].metric("models/ uses", fmt_bytes(folder_size(root)))
    if disk is not None:
        cols[1].metric("Free on that disk", f"{disk.free_gb:.1f} GB")
        cols[2].metric("Disk size", f"{disk.total_gb:.0f} GB")
    st.caption(plain(f"Folder: {root}"))


st.title("Models")
with friendly_errors("read the model folder"):
    disk_usage()
default_keys = list(dict.fromkeys(MODEL_SETS["default"].values()))
tiny_keys = [k for k, ref in MODELS.items() if ref.is_tiny]
other_keys = [k for k in MODELS if k not in default_keys and k not in tiny_keys]
for title, keys in (("Real models", default_keys + other_keys), (f"{TINY_LABEL} (built on first use)", tiny_keys)):
    st.subheader(title)
    for key in keys:
        with friendly_errors(f"show {key}"):
            model_card(MODELS[key])
    if title == "Real models":
        with friendly_errors("show the IP-Adapter"):
            actions.ip_adapter_card()
st.subheader("LoRA styles")
with friendly_errors("read the LoRA folder"):
    actions.lora_section()

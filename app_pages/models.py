"""Models page: each model of every kind with its status, size and needs; download (and cancel), verify,
remove; a Hugging Face token for gated models; disk usage; LoRA files."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages import model_actions as actions
from app_pages.common import TINY_LABEL, fmt_bytes, friendly_errors, generator, plain
from backend.errors import ModelFolderError
from backend.memory.plans import min_vram_by_level
from backend.models import needs, store
from backend.models.registry import MODEL_SETS, ModelRef
from backend.monitor import folder_size, read_disk

LEVEL_LABELS = {"gpu": "all on the GPU", "model_offload": "model offload", "group_offload": "group offload",
                "fp8_group_offload": "fp8 weights + group offload", "sequential_offload": "sequential offload"}
KIND_ROLES = {needs.WEIGHTS: "finishing (an upscaler or RIFE frame interpolation, when the job asks for it)",
              needs.PLANNER: "storyboard planner (planner: llm)",
              needs.IP_ADAPTER: "keyframe consistency (consistency: ip-adapter, or auto when it is downloaded)"}


def facts(ref: ModelRef, kind: str) -> list[str]:
    """What the model needs and does, one short line each."""
    if kind == needs.PIPELINE:
        roles = sorted({role for roles in MODEL_SETS.values() for role, key in roles.items() if key == ref.key})
        lines = [f"Role: {', '.join(roles) if roles else 'optional'} · native {ref.width}×{ref.height}"
                 + (f", {ref.frames} frames @ {ref.fps} fps" if ref.frames > 1 else "")]
    else:
        lines = [f"Role: {KIND_ROLES[kind]}"]
    vram = min_vram_by_level(ref) if kind == needs.PIPELINE else {}
    if vram:
        least = min(vram, key=vram.get)
        lines.append(f"VRAM: {vram.get('gpu', 0):.1f} GB {LEVEL_LABELS['gpu']}, down to {vram[least]:.1f} GB "
                     f"with {LEVEL_LABELS.get(least, least)}")
    elif ref.is_tiny:
        lines.append("Runs on the CPU in seconds; built on this machine, nothing to download.")
    if ref.repo_id:
        lines.append(f"Download: {ref.size_gb:.{1 if ref.size_gb >= 0.1 else 2}f} GB from {ref.repo_id}, "
                     f"{pin_text(ref)}")
    elif not ref.is_tiny:
        lines.append("No public download: put its file into the models folder by hand.")
    if ref.licence:
        lines.append(f"Licence: {ref.licence}")
    if ref.gated:
        lines.append(f"Gated: accept its licence at {ref.hub_url} with your Hugging Face account, then store an "
                     "access token (above) before downloading.")
    lines.extend(ref.notes)
    return lines


def pin_text(ref: ModelRef) -> str:
    """What exactly is downloaded: a commit of the repository, or the published file by its SHA-256."""
    if len(ref.revision) == 40:
        return f"pinned to commit {ref.revision[:12]}"
    if ref.sha256:
        return f"pinned to the published file's SHA-256 {ref.sha256[:12]}…"
    return f"revision '{ref.revision}' (not pinned)"


def model_card(ref: ModelRef, kind: str) -> None:
    root = generator().paths.models
    info = needs.model_status(ref, root)
    task = generator().downloads.task(ref)
    busy = task is not None and task.running
    with st.container(border=True):
        cols = st.columns([4, 2, 2])
        cols[0].markdown(f"**{plain(ref.label or ref.key)}** `{ref.key}`")
        for line in facts(ref, kind):
            cols[0].caption(plain(line))
        cols[1].metric("Status", info.state)
        cols[2].metric("On disk", fmt_bytes(info.bytes_on_disk))
        actions.download_status(ref)
        buttons = st.columns(4)
        if not busy and not info.ready and (ref.repo_id or ref.is_tiny):
            actions.download_button(ref, buttons[0], resume=info.state == "partial")
        if buttons[1].button("Verify", key=f"m_verify_{ref.key}", disabled=busy):
            with friendly_errors("verify the model"):
                problems = needs.verify_model(ref, root)
                st.session_state[f"m_result_{ref.key}"] = (
                    ("error", " ".join(problems)) if problems else ("success", "All files present and complete."))
        if not busy and (info.bytes_on_disk or info.state == "linked"):
            actions.remove_button(ref, buttons[2], buttons[3])
        if not busy and not ref.is_tiny and not info.ready:
            if ref.repo_id:
                st.caption(plain(f"Or in a terminal: {needs.DOWNLOAD_COMMAND} {ref.key} (Ctrl-C cancels; the "
                                 "same command resumes)"))
            if kind == needs.PIPELINE:
                link_folder(ref, root)
        result = st.session_state.get(f"m_result_{ref.key}")
        if result:
            text_kind, text = result
            (st.error if text_kind == "error" else st.success)(plain(text))
            if text_kind == "error" and info.ready and not busy and info.state != "linked":
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
with friendly_errors("read the Hugging Face token"):
    actions.token_section()
presets = needs.catalog()
default_keys = list(dict.fromkeys(MODEL_SETS["default"].values()))
real = [key for key, (_, ref) in presets.items() if not ref.is_tiny]
pipelines = [key for key in default_keys + real if presets[key][0] == needs.PIPELINE]
sections = (("Real models", list(dict.fromkeys(pipelines))),
            ("Finishing, planner and IP-Adapter", [key for key in real if presets[key][0] != needs.PIPELINE]),
            (f"{TINY_LABEL} (built on first use)", [key for key, (_, ref) in presets.items() if ref.is_tiny]))
for title, keys in sections:
    st.subheader(title)
    for key in keys:
        with friendly_errors(f"show {key}"):
            kind, ref = presets[key]
            model_card(ref, kind)
st.subheader("LoRA styles")
with friendly_errors("read the LoRA folder"):
    actions.lora_section()

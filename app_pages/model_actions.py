"""Models page actions: start a download and show its byte progress; remove a model; LoRA files.

The downloads themselves run in the backend (``generator().downloads``, a ``DownloadManager``): the
page only starts them and polls their task, so every tab sees the same progress and a click never
aborts a download.
"""

from __future__ import annotations

import logging
import time

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app_pages.common import fmt_bytes, fmt_seconds, friendly_errors, generator, plain
from backend.errors import LoraError
from backend.models import ip_adapter, loras, store
from backend.models.registry import MODELS, ModelRef

log = logging.getLogger("studio.ui")


def download_button(ref: ModelRef, col: DeltaGenerator, *, resume: bool, repair: bool = False) -> None:
    """Download (or resume, or build a tiny model); ``repair``: fetch again what Verify found damaged."""
    label = "Repair" if repair else "Build now" if ref.is_tiny else ("Resume download" if resume else "Download")
    if col.button(label, key=f"m_download_{ref.key}", icon=":material/download:"):
        with friendly_errors("start the download"):
            generator().downloads.start(ref)
            st.rerun()


def download_status(ref: ModelRef) -> None:
    """Live progress while a download runs; its outcome afterwards."""
    task = generator().downloads.task(ref)
    if task is None:
        return
    if task.running:
        _progress(ref.key)
    elif task.state == "failed":
        st.error(plain(task.error))
    else:
        st.success("Downloaded and marked complete." if not ref.is_tiny else "Built.")


@st.fragment(run_every=1.0)
def _progress(key: str) -> None:
    task = generator().downloads.task(MODELS[key])
    if task is None or not task.running:
        st.rerun()  # finished: redraw the whole page once with the new status
    done, total = task.done, task.total
    text = f"{fmt_bytes(done)} of {fmt_bytes(total)}" if total else fmt_bytes(done)
    text += f" · {fmt_seconds(time.monotonic() - task.started)}"
    st.progress(min(1.0, done / total) if total else 0.0, text=plain(f"Downloading: {text}"))


def remove_button(ref: ModelRef, ask: DeltaGenerator, confirm: DeltaGenerator) -> None:
    key = f"m_confirm_{ref.key}"
    if not st.session_state.get(key):
        if ask.button("Remove", key=f"m_remove_{ref.key}", icon=":material/delete:"):
            st.session_state[key] = True
            st.rerun()
        return
    st.warning(plain(f"Remove the files of {ref.label or ref.key}? A linked folder is only unlinked."))
    if ask.button("Yes, remove", key=f"m_yes_{ref.key}", type="primary"):
        st.session_state.pop(key, None)
        with friendly_errors("remove the model"):
            st.session_state[f"m_result_{ref.key}"] = ("success", store.remove(ref, generator().paths.models))
            st.rerun()
    if confirm.button("Keep", key=f"m_keep_{ref.key}"):
        st.session_state.pop(key, None)
        st.rerun()


# --- LoRA files and the IP-Adapter (not diffusers pipelines: their own section) ------------------------

def lora_section() -> None:
    """The LoRA folder: each file with its size and SHA-256 prefix, an upload (checked by content), delete."""
    root = generator().paths.models
    st.caption(plain(f"Files in {loras.lora_folder(root)}. Choose them on the Create page (Storyboard) or with "
                     "`--lora NAME[:WEIGHT[:TARGET]]`; the sidecar records each file's SHA-256."))
    files = loras.list_loras(root)
    if not files:
        st.caption("No LoRA files yet.")
    for item in files:
        cols = st.columns([5, 2, 3, 2])
        cols[0].markdown(f"**{plain(item.name)}**")
        cols[1].caption(fmt_bytes(item.size))
        cols[2].caption(f"sha256 {item.sha256[:12]}…")
        _delete_lora(item.name, cols[3])
    uploaded = st.file_uploader("Add a LoRA (.safetensors)", type=["safetensors"], key="m_lora_upload")
    if uploaded is not None and st.button("Add this LoRA", key="m_lora_add", icon=":material/upload:"):
        with friendly_errors("add the LoRA"):
            try:
                saved = loras.save_uploaded(uploaded.getvalue(), uploaded.name, root)
            except LoraError as exc:
                st.session_state["m_lora_result"] = ("error", str(exc))
            else:
                st.session_state["m_lora_result"] = ("success", f"Added {saved.name} (sha256 {saved.sha256[:12]}…).")
            st.rerun()
    result = st.session_state.get("m_lora_result")
    if result:
        kind, text = result
        (st.error if kind == "error" else st.success)(plain(text))


def _delete_lora(name: str, col: DeltaGenerator) -> None:
    key = f"m_lora_confirm_{name}"
    if not st.session_state.get(key):
        if col.button("Delete", key=f"m_lora_delete_{name}", icon=":material/delete:"):
            st.session_state[key] = True
            st.rerun()
        return
    if col.button("Yes, delete", key=f"m_lora_yes_{name}", type="primary"):
        st.session_state.pop(key, None)
        with friendly_errors("delete the LoRA"):
            loras.delete_lora(generator().paths.models, name)
            st.session_state["m_lora_result"] = ("success", f"Deleted {name}.")
            st.rerun()


def ip_adapter_card() -> None:
    """The IP-Adapter's status; it downloads with its own command (it is not a diffusers pipeline folder)."""
    root = generator().paths.models
    ref = ip_adapter.ip_adapter_for("default")
    ready = ip_adapter.is_available(ref, root)
    with st.container(border=True):
        cols = st.columns([4, 2, 2])
        cols[0].markdown(f"**{plain(ref.label)}** `{ref.key}`")
        cols[0].caption(plain("Keyframe consistency: keeps later keyframes on keyframe 0's subject "
                              "(used by consistency auto / ip-adapter; without it auto uses img2img)."))
        cols[0].caption(plain(f"Download: {ref.size_gb:.1f} GB from {ref.repo_id} · Licence: {ref.licence}"))
        cols[1].metric("Status", "downloaded" if ready else "missing")
        cols[2].metric("On disk", fmt_bytes(store.bytes_on_disk(ip_adapter.adapter_folder(ref, root))))
        if not ready:
            st.code(ip_adapter.DOWNLOAD_COMMAND, language="bash")

"""Models page actions: start a download, show its byte progress, cancel it; remove a model; the Hugging
Face token for gated models; LoRA files.

The downloads themselves run in the backend (``generator().downloads``, a ``DownloadManager``): the
page only starts, polls and cancels their task, so every tab sees the same progress and a click never
aborts a download by accident. A cancelled download keeps the files that finished; Resume continues.
The token goes straight from the password field to huggingface_hub's own token store: the field's
value is dropped from the session in the same click, and the studio never writes it anywhere.
"""

from __future__ import annotations

import logging
import time

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app_pages.common import fmt_bytes, fmt_seconds, friendly_errors, generator, plain
from backend.errors import DownloadError, LoraError
from backend.models import loras, store
from backend.models.downloads import TOKENS_PAGE, has_token, save_token
from backend.models.needs import find_preset
from backend.models.registry import ModelRef

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
    elif task.state == "cancelled":
        st.info("Download cancelled: the files that finished are kept, and Resume download continues from them.")
    else:
        st.success("Downloaded and marked complete." if not ref.is_tiny else "Built.")


@st.fragment(run_every=1.0)
def _progress(key: str) -> None:
    ref = find_preset(key)
    task = generator().downloads.task(ref)
    if task is None or not task.running:
        st.rerun()  # finished: redraw the whole page once with the new status
    done, total = task.done, task.total
    text = f"{fmt_bytes(done)} of {fmt_bytes(total)}" if total else fmt_bytes(done)
    text += f" · {fmt_seconds(time.monotonic() - task.started)}"
    verb = "Cancelling" if task.state == "cancelling" else "Downloading"
    st.progress(min(1.0, done / total) if total else 0.0, text=plain(f"{verb}: {text}"))
    if task.state != "cancelling" and st.button("Cancel", key=f"m_cancel_{key}", icon=":material/cancel:"):
        with friendly_errors("cancel the download"):
            generator().downloads.cancel(ref)
            st.rerun()


def token_section() -> None:
    """Gated models: where to accept the licence, and a token for huggingface_hub's own token store."""
    stored = has_token()
    with st.expander("Hugging Face access token (for gated models)", expanded=not stored):
        st.caption(plain("A gated model (its card says so) downloads only after you accept its licence on its "
                         f"Hugging Face page with your account, using an access token with 'read' access from "
                         f"{TOKENS_PAGE}. The token is checked with the Hub and kept in huggingface_hub's own "
                         "token store (as `hf auth login` does), never in the studio's database, logs or settings."))
        st.caption("A token is available (stored, or HF_TOKEN)." if stored else "No token is stored yet.")
        with st.form("m_token_form", clear_on_submit=True):
            st.text_input("Access token", type="password", key="m_hf_token", placeholder="hf_...")
            submitted = st.form_submit_button("Store the token", icon=":material/key:")
        if submitted:
            st.session_state["m_token_result"] = _store_token(str(st.session_state.pop("m_hf_token", "") or ""))
            st.rerun()
        result = st.session_state.get("m_token_result")
        if result:
            kind, text = result
            (st.error if kind == "error" else st.success)(plain(text))


def _store_token(token: str) -> tuple[str, str]:
    try:
        save_token(token)
    except DownloadError as exc:  # its message never quotes the token
        return "error", str(exc)
    return "success", "Token stored in huggingface_hub's token store; gated downloads use it from now on."


def _asked(state_key: str, col: DeltaGenerator, label: str, key: str) -> bool:
    """The first click of a two-click delete: True once asked (the caller then shows the confirmation)."""
    if st.session_state.get(state_key):
        return True
    if col.button(label, key=key, icon=":material/delete:"):
        st.session_state[state_key] = True
        st.rerun()
    return False


def remove_button(ref: ModelRef, ask: DeltaGenerator, confirm: DeltaGenerator) -> None:
    key = f"m_confirm_{ref.key}"
    if not _asked(key, ask, "Remove", f"m_remove_{ref.key}"):
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
    if not _asked(key, col, "Delete", f"m_lora_delete_{name}"):
        return
    if col.button("Yes, delete", key=f"m_lora_yes_{name}", type="primary"):
        st.session_state.pop(key, None)
        with friendly_errors("delete the LoRA"):
            loras.delete_lora(generator().paths.models, name)
            st.session_state["m_lora_result"] = ("success", f"Deleted {name}.")
            st.rerun()


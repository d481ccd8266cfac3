"""Models page actions: start a download and show its byte progress; remove a model.

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
from backend.models import store
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

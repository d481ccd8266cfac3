"""Models page actions: downloads in a background thread with a byte progress bar, and remove.

``backend.models.downloads.download`` is a blocking call with a byte callback; a page script must
not block on it (any click would abort it), so it runs in a thread of its own and the page polls a
small task record kept process-wide (beside the orchestrator), shared by every tab.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app_pages.common import fmt_bytes, fmt_seconds, friendly_errors, generator, plain, process_state
from backend.models import store
from backend.models.registry import MODELS, ModelRef

log = logging.getLogger("studio.ui")

GIB = 1024**3


@dataclass
class DownloadTask:
    key: str
    total: int | None
    done: int = 0
    state: str = "downloading"  # downloading | done | failed
    error: str = ""
    started: float = field(default_factory=time.monotonic)

    def progress(self, done: int, total: int | None) -> None:  # called from the download thread
        self.done, self.total = done, total or self.total


def _tasks() -> dict[str, DownloadTask]:
    holder = process_state()
    with holder.lock:
        if not hasattr(holder, "downloads"):
            holder.downloads = {}
        return holder.downloads


def task_for(ref: ModelRef, root: Path) -> DownloadTask | None:
    return _tasks().get(f"{root}|{ref.key}")


def start_download(ref: ModelRef, root: Path) -> DownloadTask:
    """Start (or join) the download of ``ref`` into ``root``; returns its task."""
    from backend.models.downloads import DownloadError, download

    tasks = _tasks()
    name = f"{root}|{ref.key}"
    with process_state().lock:
        running = tasks.get(name)
        if running is not None and running.state == "downloading":
            return running
        task = tasks[name] = DownloadTask(ref.key, total=int(ref.size_gb * GIB) or None)

    def work() -> None:
        try:
            download(ref, root, progress=task.progress)
        except DownloadError as exc:  # offline, gated, disk full, ...: the message says what to do
            task.error, task.state = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - the thread must record every failure for the page
            log.exception("download of %s failed", ref.key)
            task.error = f"Unexpected error ({type(exc).__name__}: {exc}). Details are in the studio log."
            task.state = "failed"
        else:
            task.state = "done"

    threading.Thread(target=work, name=f"studio-download-{ref.key}", daemon=True).start()
    return task


def download_button(ref: ModelRef, col: DeltaGenerator, *, resume: bool) -> None:
    label = "Build now" if ref.is_tiny else ("Resume download" if resume else "Download")
    if col.button(label, key=f"m_download_{ref.key}", icon=":material/download:"):
        with friendly_errors("start the download"):
            start_download(ref, generator().paths.models)
            st.rerun()


def download_status(ref: ModelRef) -> None:
    """Live progress while a download runs; its outcome afterwards."""
    task = task_for(ref, generator().paths.models)
    if task is None:
        return
    if task.state == "downloading":
        _progress(ref.key)
    elif task.state == "failed":
        st.error(plain(task.error))
    else:
        st.success("Downloaded and marked complete." if not ref.is_tiny else "Built.")


@st.fragment(run_every=1.0)
def _progress(key: str) -> None:
    task = task_for(MODELS[key], generator().paths.models)
    if task is None or task.state != "downloading":
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

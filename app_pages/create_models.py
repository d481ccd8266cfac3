"""Which models a job needs that are not on this machine, and one button to download them all.

``backend.models.needs`` decides (the same answer the submit gets): the pre-flight plan names the
keyframe and motion models that will really run, the finishing choices add the upscaler or RIFE, and the
storyboard choices the LLM planner or an explicitly chosen IP-Adapter. The tiny test set builds itself and
is never missing. Downloads go through the same ``DownloadManager`` the Models page uses
(``generator().downloads``), so both pages show the same progress, a click never starts a second copy,
and Cancel on either page stops it (the files that finished are kept for the next attempt).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import streamlit as st

from app_pages.common import fmt_bytes, fmt_seconds, friendly_errors, generator, plain
from backend.models import needs
from backend.models.download_manager import combined
from backend.models.needs import MissingModel

if TYPE_CHECKING:
    from backend.spec import JobSpec

__all__ = ["MissingModel", "missing_models", "missing_section"]
log = logging.getLogger("studio.ui")


def missing_models(spec: "JobSpec", plan: dict[str, Any]) -> list[MissingModel]:
    """The models ``spec`` loads (from its pre-flight ``plan``, ``Preflight.to_dict()``) that are not here."""
    return needs.missing_models(spec, generator().paths.models, plan)


def missing_section(missing: list[MissingModel]) -> str:
    """Say what is missing, offer the download, show its progress; return why Generate must wait."""
    size = sum(m.ref.size_gb for m in missing if m.downloadable)
    st.warning(plain("This job needs models that are not on this machine yet:"))
    for item in missing:
        st.markdown(plain(f"- {item.why}"))
    if any(m.ref.gated for m in missing):
        st.caption(plain("A gated model downloads once you have accepted its licence on its Hugging Face page "
                         "and stored an access token on the Models page."))
    downloads = generator().downloads
    tasks = [t for t in (downloads.task(m.ref) for m in missing if m.downloadable) if t is not None]
    for task in tasks:
        if task.state == "failed":
            st.error(plain(f"{task.key}: {task.error}"))
    fetchable = [m.ref for m in missing if m.downloadable]
    if any(t.running for t in tasks):
        _progress(tuple(m.ref.key for m in missing if m.downloadable))
    elif fetchable:
        resumed = any(t.state == "cancelled" for t in tasks)
        label = f"{'Resume' if resumed else 'Download'} what this job needs ({size:.1f} GB)"
        if st.button(label, key="c_download_models", icon=":material/download:"):
            with friendly_errors("start the downloads"):
                for ref in fetchable:
                    downloads.start(ref)
                st.rerun()
    names = ", ".join(m.ref.key for m in missing)
    return f"Generate waits until these models are on this machine: {names}."


@st.fragment(run_every=1.0)
def _progress(keys: tuple[str, ...]) -> None:
    """One bar over every model this job downloads, and one Cancel for all of them."""
    downloads = generator().downloads
    tasks = [t for t in (downloads.task(needs.find_preset(key)) for key in keys) if t is not None]
    running = [t for t in tasks if t.running]
    if not running:
        st.rerun()  # all ended: redraw the page once with the new model status
    done, total = combined(tasks)
    text = f"{fmt_bytes(done)} of {fmt_bytes(total)}" if total else fmt_bytes(done)
    since = min(t.started for t in running)
    names = ", ".join(t.key for t in running)
    verb = "Cancelling" if all(t.state == "cancelling" for t in running) else "Downloading"
    st.progress(min(1.0, done / total) if total else 0.0,
                text=plain(f"{verb} {names}: {text} · {fmt_seconds(time.monotonic() - since)}"))
    if st.button("Cancel the downloads", key="c_cancel_downloads", icon=":material/cancel:"):
        with friendly_errors("cancel the downloads"):
            for task in running:
                downloads.cancel(needs.find_preset(task.key))
            st.rerun()

"""Which models a job needs that are not on this machine, and one button to download them.

The pre-flight plan names the keyframe and motion models that will really run (after any fallback);
the finishing choices add the upscaler or RIFE, and the storyboard choices the LLM planner or an
explicitly chosen IP-Adapter. The tiny test set builds itself and is never missing. Downloads go
through the same ``DownloadManager`` the Models page uses (``generator().downloads``), so both pages
show the same progress and a click never starts a second copy; models it cannot fetch (single weight
files, the planner, the IP-Adapter) are listed with the command that fetches them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from app_pages.common import fmt_bytes, fmt_seconds, friendly_errors, generator, plain
from backend.errors import ModelNotAvailable
from backend.models import store
from backend.models.registry import MODELS, ModelRef, finishing_model_for

if TYPE_CHECKING:
    from backend.spec import JobSpec

log = logging.getLogger("studio.ui")


@dataclass(frozen=True)
class MissingModel:
    ref: ModelRef
    why: str  # one sentence: what is missing and how to get it
    downloadable: bool  # the Download button can fetch it


def needed_models(spec: "JobSpec", plan: dict[str, Any]) -> list[ModelRef]:
    """The models ``spec`` loads, from its pre-flight plan (``Preflight.to_dict()``) and its choices."""
    keys = [str(s.get("model")) for s in plan.get("stages", []) if isinstance(s, dict) and s.get("level") != "skipped"]
    refs = [MODELS[key] for key in dict.fromkeys(keys) if key in MODELS]
    if spec.finish.upscale == "model":
        refs.append(finishing_model_for(spec.model_set, "upscaler"))
    if spec.finish.interpolation == "rife":
        refs.append(finishing_model_for(spec.model_set, "rife"))
    return refs


def missing_models(spec: "JobSpec", plan: dict[str, Any]) -> list[MissingModel]:
    root = generator().paths.models
    missing = []
    for ref in needed_models(spec, plan):
        if ref.is_tiny:
            continue
        if ref.key not in MODELS:  # a finishing model: one weights file, fetched by its own command
            from backend.models.finishing import weights_file

            try:
                weights_file(ref, root)
            except ModelNotAvailable as exc:
                missing.append(MissingModel(ref, str(exc), downloadable=False))
            continue
        state = store.status(ref, root).state
        if state not in ("downloaded", "linked"):
            gated = " (gated: accept its licence on Hugging Face and set HF_TOKEN)" if ref.gated else ""
            where = "partly downloaded" if state == "partial" else "not downloaded"
            missing.append(MissingModel(ref, f"{ref.label or ref.key}: {ref.size_gb:.1f} GB, {where}{gated}",
                                        downloadable=bool(ref.repo_id)))
    return missing + _storyboard_models(spec, root)


def _storyboard_models(spec: "JobSpec", root: Path) -> list[MissingModel]:
    """The planner LLM (planner "llm") and the IP-Adapter (consistency "ip-adapter"), when not on disk."""
    from backend.models import ip_adapter, llm_planner

    missing = []
    if spec.consistency == "ip-adapter":
        ref = ip_adapter.ip_adapter_for(spec.model_set)
        if not ip_adapter.is_available(ref, root):
            missing.append(MissingModel(ref, str(ip_adapter.not_downloaded(ref, root)), downloadable=False))
    if spec.planner == "llm":
        ref = llm_planner.planner_model_for(spec.model_set)
        if not ref.is_tiny:
            try:
                llm_planner.model_folder(ref, root)
            except ModelNotAvailable as exc:
                missing.append(MissingModel(ref, str(exc), downloadable=False))
    return missing


def missing_section(missing: list[MissingModel]) -> str:
    """Say what is missing, offer the download, show its progress; return why Generate must wait."""
    size = sum(m.ref.size_gb for m in missing if m.downloadable)
    st.warning(plain("This job needs models that are not on this machine yet:"))
    for item in missing:
        st.markdown(plain(f"- {item.why}"))
    downloads = generator().downloads
    tasks = [t for t in (downloads.task(m.ref) for m in missing if m.downloadable) if t is not None]
    running = [t for t in tasks if t.running]
    for task in tasks:
        if task.state == "failed":
            st.error(plain(f"{task.key}: {task.error}"))
    fetchable = [m.ref for m in missing if m.downloadable]
    if running:
        _progress(tuple(t.key for t in running))
    elif fetchable and st.button(f"Download what this job needs ({size:.1f} GB)", key="c_download_models",
                                 icon=":material/download:"):
        with friendly_errors("start the downloads"):
            for ref in fetchable:
                downloads.start(ref)
            st.rerun()
    names = ", ".join(m.ref.key for m in missing)
    return f"Generate waits until these models are on this machine: {names}."


@st.fragment(run_every=1.0)
def _progress(keys: tuple[str, ...]) -> None:
    tasks = [generator().downloads.task(MODELS[key]) for key in keys]
    if not any(t is not None and t.running for t in tasks):
        st.rerun()  # all ended: redraw the page once with the new model status
    for task in tasks:
        if task is None or not task.running:
            continue
        text = f"{fmt_bytes(task.done)} of {fmt_bytes(task.total)}" if task.total else fmt_bytes(task.done)
        st.progress(min(1.0, task.done / task.total) if task.total else 0.0,
                    text=plain(f"Downloading {task.key}: {text} · {fmt_seconds(time.monotonic() - task.started)}"))

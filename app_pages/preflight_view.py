"""The pre-flight panel: memory plan per stage, estimated peak VRAM and ETA, before Generate.

``backend.memory.preflight`` decides all of it; this module only draws what it says, and says
plainly when that backend module is not installed. Models the job needs that are not on this
machine come first (``create_models``): then the panel says "not downloaded", not "fits".
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

import streamlit as st

from app_pages.common import fmt_seconds, generator, plain
from app_pages.create_models import MissingModel, missing_models, missing_section

if TYPE_CHECKING:
    from backend.spec import JobSpec

log = logging.getLogger("studio.ui")


def _preflight_function() -> Any:
    try:
        module = importlib.import_module("backend.memory.preflight")
    except ModuleNotFoundError as exc:
        if exc.name != "backend.memory.preflight":
            raise
        return None
    return getattr(module, "preflight", None)


def preflight_panel(spec: "JobSpec | None", problem: str | None) -> str | None:
    """Draw the check for ``spec`` (already validated), or the ``problem`` that must be fixed first.

    Returns why Generate must wait (models to download), or None.
    """
    with st.container(border=True):
        st.markdown("**Pre-flight check**")
        if spec is None:
            st.warning(plain(problem or "Fill in the form to see the plan."))
            return None
        run = _preflight_function()
        if run is None:
            st.caption("The memory planner is not installed in this version; the job will still choose its "
                       "memory plan when it starts.")
            return None
        try:
            memory = generator().memory
            memory.refresh()  # free VRAM now, not at start-up: another program may be using the GPU
            data: dict[str, Any] = run(spec, memory.hardware, memory.remembered).to_dict()
            missing = missing_models(spec, data)
        except Exception as exc:  # noqa: BLE001 - a planner bug must not take the Create page down
            log.exception("pre-flight failed")
            st.warning(plain(f"The pre-flight check failed ({exc}); details are in the studio log."))
            return None
        wait = missing_section(missing) if missing else None
        _draw(data, missing)
        return wait


def _draw(data: dict[str, Any], missing: list[MissingModel]) -> None:
    stages = [s for s in data.get("stages", []) if isinstance(s, dict)]
    peak_vram = max((float(s.get("vram_peak_gb") or 0) for s in stages), default=0.0)
    peak_ram = max((float(s.get("ram_peak_gb") or 0) for s in stages), default=0.0)
    eta = sum(float(s.get("eta_seconds") or 0) for s in stages)
    cols = st.columns([1, 1, 1.1, 1.4])  # the last one may say "not downloaded"
    cols[0].metric("Estimated peak VRAM", f"{peak_vram:.1f} GB" if peak_vram else "none (CPU)")
    cols[1].metric("Estimated peak RAM", f"{peak_ram:.1f} GB")
    after = " once the models are downloaded (the download not counted)" if missing else ""
    cols[2].metric("Estimated time", f"~{fmt_seconds(eta)}", help=f"class: {data.get('eta_class', '—')}{after}")
    if missing:  # a plan for models that are not there is no promise: say what is in the way first
        cols[3].metric("Fits this machine", "not downloaded",
                       help=f"{len(missing)} model(s) to download first; the plan assumes they are there.")
    else:
        cols[3].metric("Fits this machine", "yes" if data.get("fits") else "no")
    rows = [{"stage": str(s.get("stage", "")), "model": str(s.get("label") or s.get("model", "")),
             "memory plan": str(s.get("settings") or s.get("level", "")),
             "peak VRAM": f"{float(s.get('vram_peak_gb') or 0):.1f} GB",
             "peak RAM": f"{float(s.get('ram_peak_gb') or 0):.1f} GB",
             "ETA": f"{fmt_seconds(s.get('eta_seconds'))} ({s.get('eta_class', '')})",
             "notes": "; ".join(str(x) for x in (s.get("residency"), *(s.get("warnings") or ())) if x)}
            for s in stages]
    st.dataframe(rows, hide_index=True, width="stretch")
    if data.get("fallback"):
        st.warning(plain(f"The requested motion engine does not fit; {data['fallback']} will be used instead."))
    for warning in data.get("warnings") or ():
        st.warning(plain(warning))
    if not data.get("fits"):
        st.error("This job does not fit this machine even with the lowest memory plan: lower the output "
                 "size, duration or steps, or pick another engine.")

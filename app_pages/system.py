"""System page: GPU, CPU, RAM and disk readings refreshed live, and the diagnostics report."""

from __future__ import annotations

import streamlit as st

from app_pages.common import friendly_errors, generator, plain
from app_pages.diagnostics import run_diagnostics, show_report
from backend.monitor import read_system


@st.fragment(run_every=2.0)
def live_readings() -> None:
    with friendly_errors("read the system"):
        paths = generator().paths
        reading = read_system({"models": paths.models, "outputs": paths.outputs})
        if reading.gpus:
            for gpu in reading.gpus:
                st.markdown(f"**GPU {gpu.index}: {plain(gpu.name)}**")
                cols = st.columns(3)
                cols[0].metric("VRAM used", f"{gpu.vram_used_gb:.1f} / {gpu.vram_total_gb:.1f} GB")
                cols[1].metric("Utilisation", "—" if gpu.utilisation_pct is None else f"{gpu.utilisation_pct} %")
                cols[2].metric("Temperature", "—" if gpu.temperature_c is None else f"{gpu.temperature_c} °C")
                st.progress(min(1.0, gpu.vram_used_gb / gpu.vram_total_gb) if gpu.vram_total_gb else 0.0)
        else:
            st.info(plain(reading.gpu_note))
        cols = st.columns(3)
        cols[0].metric("CPU", f"{reading.cpu_percent:.0f} % of {reading.cpu_count} cores")
        cols[1].metric("RAM", f"{reading.ram_used_gb:.1f} / {reading.ram_total_gb:.1f} GB")
        cols[2].metric("RAM used", f"{reading.ram_percent:.0f} %")
        for disk in reading.disks:
            st.progress(min(1.0, disk.used_gb / disk.total_gb) if disk.total_gb else 0.0,
                        text=plain(f"Disk of {disk.label}: {disk.free_gb:.1f} GB free of {disk.total_gb:.0f} GB"))


st.title("System")
live_readings()
with friendly_errors("describe the worker"):
    gen = generator()
    hw = gen.hardware
    st.caption(plain(f"Worker: {'running in this server' if gen.has_worker else 'in another studio process'} · "
                     f"detected at start: {hw.gpu_name or 'no CUDA GPU'}, {hw.ram_total_gb:.0f} GB RAM, "
                     f"{hw.cpu_count} CPUs · outputs in {gen.paths.outputs}"))

st.subheader("Diagnostics")
if st.button("Run diagnostics", key="s_diagnostics", icon=":material/stethoscope:"):
    with st.spinner("Checking this machine…"):
        st.session_state["s_report"] = run_diagnostics()
if isinstance(st.session_state.get("s_report"), dict):
    show_report(st.session_state["s_report"])

#!/usr/bin/env python3
"""Diagnostics: what a user runs when something is wrong (``./launch.sh doctor``).

Each check prints OK / WARN / FAIL with a hint. ``--quick`` skips the end-to-end smoke run of the
tiny test models; ``--json`` prints one machine-readable object. Exit code 0 when this machine can
generate (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    hint: str = ""


def check_python() -> list[Check]:
    version = platform.python_version()
    if sys.version_info >= (3, 10):
        return [Check("python", OK, version)]
    return [Check("python", FAIL, version, "Install Python 3.10 or newer.")]


def pinned_requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip()] = version.strip()
    return pins


def check_packages() -> list[Check]:
    checks = []
    for name, pinned in pinned_requirements().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            checks.append(Check(f"package {name}", FAIL, "not installed", "Run ./launch.sh to install requirements."))
            continue
        # A local build tag (torch 2.13.0+cu130 / +cpu) matches the pin.
        if installed.split("+")[0] == pinned:
            checks.append(Check(f"package {name}", OK, installed))
        else:
            checks.append(Check(f"package {name}", WARN, f"{installed} (pinned {pinned})",
                                "Delete .venv and run ./launch.sh to reinstall the tested versions."))
    return checks


def check_gpu() -> list[Check]:
    checks = []
    try:
        import torch
    except ImportError:
        return [Check("torch", FAIL, "not importable", "Run ./launch.sh to install requirements.")]
    cuda = torch.version.cuda or "CPU build"
    checks.append(Check("torch", OK, f"{torch.__version__} ({cuda})"))
    driver = _nvml_driver()
    if not torch.cuda.is_available():
        hint = ("An NVIDIA driver is present but this torch build has no CUDA: reinstall torch for CUDA."
                if driver else "No NVIDIA GPU/driver found: generation runs on the CPU, which is only practical"
                " for the tiny test models. Install the NVIDIA driver if this machine has a GPU.")
        checks.append(Check("gpu", WARN, f"none usable (NVML: {driver or 'no driver'})", hint))
        return checks
    from backend.memory import detect_hardware

    hw = detect_hardware()
    major, minor = hw.compute_capability or (0, 0)
    detail = (f"{hw.gpu_name}, compute {major}.{minor}{' (bf16)' if hw.supports_bf16 else ''}, "
              f"{hw.vram_free_gb:.1f}/{hw.vram_total_gb:.1f} GB free, driver {driver or '?'}")
    status = OK if hw.vram_total_gb >= 6 else WARN
    checks.append(Check("gpu", status, detail, "" if status == OK else "Under 6 GB of VRAM: use the Quick preset."))
    return checks


def _nvml_driver() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
            return version if isinstance(version, str) else version.decode()
        finally:
            pynvml.nvmlShutdown()
    except (ImportError, OSError):
        return None
    except Exception as exc:  # pynvml.NVMLError subclasses; the library may be missing entirely
        if type(exc).__module__.startswith("pynvml"):
            return None
        raise


def check_ram() -> list[Check]:
    import psutil

    total = psutil.virtual_memory().total / 1024**3
    if total >= 16:
        return [Check("ram", OK, f"{total:.1f} GB")]
    return [Check("ram", WARN, f"{total:.1f} GB", "Under 16 GB of RAM: offloaded models may not fit; use Quick.")]


def check_ffmpeg() -> list[Check]:
    import subprocess

    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        return [Check("ffmpeg", FAIL, f"not found ({exc})", "Run ./launch.sh to install imageio-ffmpeg.")]
    encoders = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    filters = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True).stdout
    checks = [Check("ffmpeg", OK, f"{imageio_ffmpeg.get_ffmpeg_version()} ({exe})")]
    checks.append(Check("ffmpeg libx264", OK if "libx264" in encoders else FAIL,
                        "available" if "libx264" in encoders else "missing", "Reinstall imageio-ffmpeg."))
    nvenc = "h264_nvenc" in encoders
    checks.append(Check("ffmpeg h264_nvenc", OK if nvenc else WARN, "listed (used only with a GPU)" if nvenc else
                        "missing", "" if nvenc else "GPU encoding unavailable; libx264 is used."))
    for name in ("vidstabdetect", "minterpolate", "lut3d"):
        present = f" {name} " in filters
        checks.append(Check(f"ffmpeg {name}", OK if present else WARN, "available" if present else "missing",
                            "" if present else f"The {name} option is unavailable with this ffmpeg."))
    return checks


def check_folders() -> list[Check]:
    from backend.paths import runtime_paths

    paths = runtime_paths()
    checks = []
    for label, folder, want_gb in (("models", paths.models, 30), ("outputs", paths.outputs, 2),
                                   ("temp", paths.temp, 2), ("uploads", paths.uploads, 0)):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder):
                pass
        except OSError as exc:
            checks.append(Check(f"folder {label}", FAIL, f"{folder} not writable ({exc.strerror})",
                                f"Fix the permissions of {folder}."))
            continue
        free = shutil.disk_usage(folder).free / 1024**3
        status = OK if free >= want_gb else (WARN if free >= 1 else FAIL)
        hint = "" if status == OK else f"Only {free:.1f} GB free; {label} wants {want_gb} GB or more."
        checks.append(Check(f"folder {label}", status, f"{folder} writable, {free:.1f} GB free", hint))
    return checks


def check_models() -> list[Check]:
    from backend.models.registry import MODELS
    from backend.models.store import local_folder
    from backend.paths import runtime_paths

    root = runtime_paths().models
    checks = []
    for ref in MODELS.values():
        if ref.is_tiny:
            continue
        folder = local_folder(ref, root)
        if folder is None:
            checks.append(Check(f"model {ref.key}", WARN, "not downloaded",
                                f"Download it on the Models page or: python -m backend models download {ref.key}"))
        else:
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1024**3
            checks.append(Check(f"model {ref.key}", OK, f"{size:.1f} GB in {folder}"))
    return checks


def check_port(port: int = 8501) -> list[Check]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return [Check(f"port {port}", WARN, "in use",
                          "The studio may already be running; otherwise use ./launch.sh --port 8502.")]
    return [Check(f"port {port}", OK, "free")]


def check_smoke_run() -> list[Check]:
    """A whole tiny-model job end to end: loader, diffusers, memory plan, ffmpeg, store."""
    from backend.jobs.orchestrator import VideoGenerator
    from backend.paths import runtime_paths
    from backend.spec import JobSpec

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="studio-doctor-") as home:
        generator = VideoGenerator(runtime_paths(home))
        try:
            spec = JobSpec(prompt="diagnostics smoke test", model_set="tiny", duration=1, fps=8, seed=1,
                           width=256, height=144)
            status = generator.wait(generator.submit(spec), timeout=600)
        finally:
            generator.shutdown()
    seconds = time.monotonic() - started
    if status.state == "done":
        return [Check("smoke run (tiny models)", OK, f"{seconds:.1f} s end to end")]
    return [Check("smoke run (tiny models)", FAIL, f"{status.state}: {status.error}",
                  "See the message above; run with -v for the log.")]


def run_checks(quick: bool) -> list[Check]:
    groups: list[Callable[[], list[Check]]] = [check_python, check_packages, check_gpu, check_ram, check_ffmpeg,
                                               check_folders, check_models, check_port]
    if not quick:
        groups.append(check_smoke_run)
    checks: list[Check] = []
    for group in groups:
        try:
            checks.extend(group())
        except Exception as exc:  # a broken check is itself a finding, never a crash of the doctor
            checks.append(Check(group.__name__.removeprefix("check_"), FAIL, f"{type(exc).__name__}: {exc}",
                                "Please report this with the output of ./launch.sh doctor --json."))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that this machine can run the studio.")
    parser.add_argument("--quick", action="store_true", help="skip the end-to-end tiny-model run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("-v", "--verbose", action="store_true", help="show backend logs")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # diagnostics never download
    import logging

    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    checks = run_checks(args.quick)
    ok = all(c.status != FAIL for c in checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [asdict(c) for c in checks]}, ensure_ascii=False))
    else:
        for c in checks:
            print(f"{c.status:<4}  {c.name:<30} {c.detail}")
            if c.hint and c.status != OK:
                print(f"      → {c.hint}")
        print("\nThis machine can generate." if ok else "\nThis machine cannot generate yet: fix the FAIL lines.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

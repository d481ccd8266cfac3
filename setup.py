#!/usr/bin/env python3
"""Installer for the studio, and (with arguments) an ordinary setuptools script.

``python3 setup.py`` with no arguments is what ``./launch.sh`` runs: it creates ``.venv``, installs
the pinned requirements (only when they changed since the last install), creates the runtime
folders, checks ffmpeg and the GPU, and prints a summary. It is safe to run again and again.

With any arguments (``pip install -e .`` runs it that way) it is a plain setuptools ``setup()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".studio-installed.json"
# The test-only side environment for the model-upscaler tests on a CPU-only torch (install_vision_test_env).
VISION = ROOT / ".venv-vision"
VISION_REQUIREMENTS = ROOT / "requirements-vision-test.txt"
VISION_STAMP = VISION / ".studio-vision-installed.json"
RUNTIME_FOLDERS = ("models", "outputs", "temp", "uploads")
MIN_PYTHON = (3, 10)

PROBE = r"""
import json, shutil
out = {}
try:
    import imageio_ffmpeg, subprocess
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    enc = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    out["ffmpeg"] = {"path": exe, "libx264": "libx264" in enc, "h264_nvenc": "h264_nvenc" in enc}
except Exception as exc:  # report, never crash the installer
    out["ffmpeg"] = {"error": str(exc)}
try:
    import pynvml
    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    name = pynvml.nvmlDeviceGetName(h)
    out["gpu"] = {"name": name if isinstance(name, str) else name.decode(),
                  "vram_gb": round(pynvml.nvmlDeviceGetMemoryInfo(h).total / 1024**3, 1)}
    pynvml.nvmlShutdown()
except Exception as exc:
    out["gpu"] = {"error": type(exc).__name__}
import torch
out["torch"] = {"version": torch.__version__, "cuda": torch.cuda.is_available()}
print(json.dumps(out))
"""


def venv_python() -> Path:
    return VENV / "bin" / "python"


def requirement_files(with_test_tools: bool, with_fleet: bool = False) -> list[Path]:
    files = [ROOT / "requirements.txt"]
    if with_test_tools:  # the tests run the fleet too: its extra is part of the test install
        files += [ROOT / "requirements-fleet.txt", ROOT / "requirements-test.txt"]
    elif with_fleet:  # `./launch.sh fleet`: Ray, the optional extra
        files += [ROOT / "requirements-fleet.txt"]
    return files


def requirements_digest(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_venv() -> None:
    if venv_python().exists():
        return
    print(f"• creating the virtual environment in {VENV.relative_to(ROOT)}/")
    venv.EnvBuilder(with_pip=True, clear=False).create(VENV)


def install_requirements(with_test_tools: bool, with_fleet: bool = False) -> bool:
    """Install pinned requirements if they changed since the last successful install."""
    files = requirement_files(with_test_tools, with_fleet)
    wanted = requirements_digest(files)
    installed = json.loads(STAMP.read_text()) if STAMP.exists() else {}
    if installed.get("digest") == wanted or (
            # a test install already holds the fleet extra: `fleet` after `test` installs nothing
            not with_test_tools and with_fleet and installed.get("digest") == requirements_digest(
                requirement_files(True))):
        print("• requirements already installed (unchanged since the last install)")
        return False
    print("• installing pinned requirements (first run takes a few minutes)…")
    command = [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    for path in files:
        command += ["-r", str(path)]
    subprocess.run(command, check=True)
    STAMP.write_text(json.dumps({"digest": wanted, "files": [p.name for p in files]}))
    return True


def site_packages(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())


def write_pth(python: Path, name: str, lines: list[str]) -> None:
    link = site_packages(python) / name
    text = "".join(f"{line}\n" for line in lines)
    if not link.exists() or link.read_text() != text:
        link.write_text(text)


def link_project() -> None:
    """A ``.pth`` file in the environment naming this folder, so ``.venv/bin/python -m backend …`` works from any
    directory (the studio's folders stay where ``backend/paths.py`` puts them: beside the code, or STUDIO_HOME)."""
    write_pth(venv_python(), "local_video_studio.pth", [str(ROOT)])


def torch_cuda() -> str:
    """The CUDA version .venv's torch was built for; empty for a CPU-only build."""
    probe_cuda = [str(venv_python()), "-c", "import torch; print(torch.version.cuda or '')"]
    return subprocess.run(probe_cuda, capture_output=True, text=True).stdout.strip()


def install_gpu_extras() -> bool:
    """requirements-gpu.txt (spandrel, and the torchvision it brings) only where torch has CUDA."""
    cuda = torch_cuda()
    stamp = VENV / ".studio-gpu-extras.json"
    wanted = requirements_digest([ROOT / "requirements-gpu.txt"])
    if not cuda or (stamp.exists() and json.loads(stamp.read_text()).get("digest") == wanted):
        return False
    print(f"• installing the GPU extras (CUDA {cuda}): model upscalers")
    subprocess.run([str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    "-r", str(ROOT / "requirements-gpu.txt")], check=True)
    stamp.write_text(json.dumps({"digest": wanted}))
    return True


def install_vision_test_env() -> bool:
    """With the test tools beside a CPU-only torch: ``.venv-vision``, where the model-upscaler tests run.

    spandrel needs torchvision, which only loads beside PyPI's CUDA build of torch (that build runs on the CPU
    too); installing them into .venv would replace its torch. So they go into a side environment that sees
    .venv's packages and this folder through a ``.pth`` file: its entries come after the environment's own
    site-packages, so torch and torchvision resolve to the side environment's, everything else to .venv's.
    Failing to install (offline, no wheels) is not an error: those tests then skip and say why.
    """
    if torch_cuda():  # spandrel is then in .venv itself (install_gpu_extras)
        return False
    python = VISION / "bin" / "python"
    # also a new or re-installed .venv: it may lack something torch, torchvision or spandrel need, which pip adds
    borrowed = (STAMP.read_text() if STAMP.exists() else "") + str((VENV / "pyvenv.cfg").stat().st_mtime_ns)
    wanted = hashlib.sha256((requirements_digest([VISION_REQUIREMENTS]) + borrowed).encode()).hexdigest()
    try:
        if not python.exists():
            # created by .venv's python, so on the same base interpreter (the .pth shares compiled packages)
            subprocess.run([str(venv_python()), "-m", "venv", str(VISION)], check=True, capture_output=True,
                           text=True)
        # before pip runs, so it counts .venv's packages as installed and adds only what is missing here
        # (.venv's torch lies outside this environment: pip installs the pinned one here and leaves it alone)
        write_pth(python, "studio_main_venv.pth", [str(site_packages(venv_python())), str(ROOT)])
        if VISION_STAMP.exists() and json.loads(VISION_STAMP.read_text()).get("digest") == wanted:
            return False
        print(f"• installing the upscaler test environment in {VISION.relative_to(ROOT)}/ (CPU-only torch here)…")
        subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                        "-r", str(VISION_REQUIREMENTS)], check=True, capture_output=True, text=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        said = (getattr(exc, "stderr", None) or "").strip().splitlines() or [str(exc)]
        said = [line for line in said if line.startswith("ERROR:")][:1] or said[-1:]  # pip's first error says most
        shutil.rmtree(VISION, ignore_errors=True)  # no half-made environment: the tests skip instead
        print(f"• could not install {VISION.name} ({said[0][:200]}); the spandrel upscaler tests will skip")
        return False
    VISION_STAMP.write_text(json.dumps({"digest": wanted, "files": [VISION_REQUIREMENTS.name]}))
    return True


def ensure_runtime_folders() -> None:
    for name in RUNTIME_FOLDERS:
        (ROOT / name).mkdir(exist_ok=True)


def probe() -> dict:
    result = subprocess.run([str(venv_python()), "-c", PROBE], capture_output=True, text=True)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["probe failed"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def summary(found: dict) -> None:
    print("• summary:")
    if "error" in found:
        print(f"    could not inspect the environment: {found['error']}")
        return
    ffmpeg = found.get("ffmpeg", {})
    if "error" in ffmpeg:
        print(f"    ffmpeg: MISSING ({ffmpeg['error']})")
    else:
        print(f"    ffmpeg: bundled, libx264 {'yes' if ffmpeg['libx264'] else 'NO'},"
              f" NVENC {'listed' if ffmpeg['h264_nvenc'] else 'no'}")
    gpu = found.get("gpu", {})
    if "name" in gpu:
        print(f"    GPU: {gpu['name']} ({gpu['vram_gb']} GB)")
    else:
        print("    GPU: none found — the studio runs on the CPU (slow; fine for the test models)")
    torch_info = found.get("torch", {})
    print(f"    torch {torch_info.get('version')}, CUDA {'available' if torch_info.get('cuda') else 'not available'}")
    print("    run `./launch.sh doctor` for a full check")


def install(argv: list[str]) -> int:
    if sys.version_info < MIN_PYTHON:
        print(f"Python {'.'.join(map(str, MIN_PYTHON))}+ is required (this is {sys.version.split()[0]}).")
        return 1
    with_test_tools = "--with-test-tools" in argv
    with_fleet = "--with-fleet" in argv
    quiet = "--quiet" in argv
    try:
        ensure_venv()
        install_requirements(with_test_tools, with_fleet)
        install_gpu_extras()
        link_project()
        if with_test_tools:
            install_vision_test_env()
    except subprocess.CalledProcessError as exc:
        print(f"Installing the requirements failed (exit {exc.returncode}). Check your network and disk space,"
              " then run ./launch.sh again; the install resumes where it stopped.")
        return 1
    ensure_runtime_folders()
    if not quiet:
        summary(probe())
    return 0


def setuptools_setup() -> None:
    from setuptools import find_packages, setup

    requirements = [
        line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    setup(
        name="local-video-studio",
        version="0.1.0",
        description="Local AI video studio: prompt → keyframes → motion → finished MP4 on your own GPU",
        packages=find_packages(include=["backend", "backend.*"]),
        py_modules=["app", "test_system"],
        install_requires=requirements,
        python_requires=">=3.10",
    )


if __name__ == "__main__" and (len(sys.argv) == 1 or all(a.startswith("--") and a in (
        "--with-test-tools", "--with-fleet", "--quiet") for a in sys.argv[1:])):
    sys.exit(install(sys.argv[1:]))
else:
    os.chdir(ROOT)
    setuptools_setup()

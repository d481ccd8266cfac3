"""The model upscaler through spandrel: the tiny random-weight twin loaded, tiled, and run in whole finishes
(``finish()`` and ``python -m backend finish``).

spandrel needs torchvision, which only loads beside PyPI's CUDA build of torch (that build runs on the CPU
too). Where this interpreter can import spandrel (a CUDA .venv, or .venv-vision) the tests run directly;
beside a CPU-only torch they are skipped and the last test runs this file again under .venv-vision, the side
environment ``python3 setup.py --with-test-tools`` creates there, so every test runs exactly once either way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.media.clip import MemoryClip
from backend.models.registry import finishing_model_for
from backend.spec import FinishOptions
from backend.stages.finish import FinishTarget, finish
from bench.interpolation import scenes

REPO = Path(__file__).resolve().parent.parent
VISION_PYTHON = REPO / ".venv-vision" / "bin" / "python"

try:
    import spandrel  # noqa: F401
except (ImportError, RuntimeError) as exc:  # RuntimeError: a torchvision built for another torch
    SPANDREL_MISSING = f"{type(exc).__name__}: {exc}"
else:
    SPANDREL_MISSING = ""

pytestmark = pytest.mark.tiny
needs_spandrel = pytest.mark.skipif(
    bool(SPANDREL_MISSING), reason=f"spandrel cannot load here ({SPANDREL_MISSING}); "
                                   "test_the_spandrel_tests_pass_under_venv_vision runs this test under .venv-vision")


@needs_spandrel
def test_tiny_upscaler_loads_through_spandrel_and_tiles_seamlessly(tmp_path: Path) -> None:
    from backend.models.upscalers import Tiling, Upscaler, load_upscaler

    upscaler = load_upscaler(finishing_model_for("tiny", "upscaler"), tmp_path, device="cpu")
    assert upscaler.scale == 2 and "Compact" in upscaler.label  # spandrel recognised the saved .pth
    frame = scenes(70, 50)["object"](1.0)
    tiled = Upscaler(upscaler.descriptor, "t", "cpu", Tiling(24, 8))(frame)
    whole = Upscaler(upscaler.descriptor, "w", "cpu", Tiling(512, 0))(frame)
    assert tiled.shape == (100, 140, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1  # overlap covers the receptive field


@needs_spandrel
@pytest.mark.ffmpeg
def test_finish_with_flow_and_model_upscale_on_the_tiny_twin(tmp_path: Path) -> None:
    render = scenes(48, 32)["pan"]
    clip = MemoryClip([render(i / 8) for i in range(4)], 8)
    options = FinishOptions(interpolation="flow", upscale="model", grade="none", sharpen=0.0, deflicker=3)
    result = finish(clip, target=FinishTarget(96, 64, 24, 12), options=options, workdir=tmp_path / "w",
                    output_path=tmp_path / "o.mp4", metadata={}, models_root=tmp_path / "models", model_set="tiny")
    assert (result.frames, result.width, result.height) == (12, 96, 64) and result.file.is_file()
    assert result.interpolation == "flow" and "Compact x2" in result.upscaler
    assert result.upscale_tile == 192 and result.upscale_overlap == 16 and result.deflicker == 3
    assert any(s.startswith("upscale:model tiny upscaler") for s in result.steps)
    assert "deflicker=size=3" in result.filter_graph
    data = result.to_dict()
    assert data["upscaler"] == result.upscaler and data["interpolation"] == "flow"


@needs_spandrel
@pytest.mark.ffmpeg
@pytest.mark.e2e
def test_cli_finish_with_rife_and_a_model_upscale_on_the_tiny_twins(tmp_path: Path, sample_mp4: Path) -> None:
    out = tmp_path / "out" / "upscaled.mp4"
    command = [sys.executable, "-m", "backend", "finish", str(sample_mp4), "--out", str(out), "--size", "320x192",
               "--fps", "16", "--interpolation", "rife", "--upscale", "model", "--models", "tiny", "--json"]
    env = {**os.environ, "STUDIO_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    assert (data["frames"], data["width"], data["height"]) == (16, 320, 192)  # 8 frames at 8 fps -> 1 s at 16
    assert data["interpolation"] == "rife" and "Compact x2" in data["upscaler"]  # both tiny twins, end to end
    assert Path(data["path"]) == out and out.is_file()


@pytest.mark.ffmpeg
@pytest.mark.e2e
def test_the_spandrel_tests_pass_under_venv_vision(request: pytest.FixtureRequest) -> None:
    """Beside a CPU-only torch, the tests above run in .venv-vision: its own torch, torchvision and spandrel,
    and everything else from .venv (setup.py install_vision_test_env)."""
    if not SPANDREL_MISSING:
        pytest.skip("spandrel loads in this interpreter: the tests above ran directly")
    if not VISION_PYTHON.exists():
        pytest.skip(f"spandrel cannot load beside this CPU-only torch and {VISION_PYTHON.parent.parent.name}/ does "
                    "not exist (python3 setup.py --with-test-tools creates it, or says why it could not): "
                    "the spandrel upscaler tests did not run")
    direct = [f for f in globals().values() if needs_spandrel.mark in getattr(f, "pytestmark", [])]
    command = [str(VISION_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider",
               str(Path(__file__).relative_to(REPO)), "--deselect", request.node.nodeid]  # it would only skip there
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                          text=True, timeout=600)
    summary = (done.stdout.strip().splitlines() or [""])[-1]  # "3 passed, 1 deselected in 9.87s"
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped|failed|errors?)\b", summary)}
    assert done.returncode == 0 and counts.get("passed") == len(direct) and "skipped" not in counts, (
        f"under {VISION_PYTHON}: {counts}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")

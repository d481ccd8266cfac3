"""Shared fixtures. Tests never touch the network and never need a GPU.

Each test gets its own runtime home (outputs, temp, uploads, job database) in a temp folder; the
tiny model set is cached across tests and runs in the repository's models/ folder (git-ignored),
so it is built once per machine, like a user's downloaded models.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # read by huggingface_hub at import time
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("STUDIO_MODELS_DIR", str(REPO / "models"))
sys.path.insert(0, str(REPO))

import pytest  # noqa: E402

from backend.paths import RuntimePaths, runtime_paths  # noqa: E402


@pytest.fixture
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RuntimePaths:
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    return runtime_paths().ensure()


@pytest.fixture
def sample_png(tmp_path: Path) -> Path:
    """A real (if simple) picture: a gradient with a shape, 320×180."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:180, 0:320]
    image = np.stack([x * 255 // 320, y * 255 // 180, np.full_like(x, 120)], axis=-1).astype("uint8")
    image[60:120, 140:180] = (250, 240, 30)
    path = tmp_path / "start image.png"
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def sample_mp4(tmp_path: Path) -> Path:
    """A 1 s, 8 fps, 160×96 H.264 clip of a moving square."""
    import imageio_ffmpeg
    import numpy as np

    path = tmp_path / "source clip.mp4"
    writer = imageio_ffmpeg.write_frames(str(path), (160, 96), fps=8, quality=None, macro_block_size=1,
                                         output_params=["-crf", "18"])
    writer.send(None)
    for i in range(8):
        frame = np.full((96, 160, 3), 40, np.uint8)
        frame[30:60, 10 + i * 15: 40 + i * 15] = (220, 80, 60)
        writer.send(frame)
    writer.close()
    return path


# --- layers of the suite (pytest.ini lists the markers) -------------------------------------------
LAYER_MARKERS = ("unit", "ffmpeg", "tiny", "ui", "browser", "e2e")
# What a module's tests need when a test does not say otherwise (a test's own markers replace these).
MODULE_LAYERS: dict[str, tuple[str, ...]] = {
    "test_bad_inputs": ("ffmpeg",),
    "test_bench_pipeline": ("tiny",),
    "test_browser": ("browser", "e2e"),
    "test_cli": ("tiny", "e2e"),
    "test_diagnostics": ("tiny", "e2e"),
    "test_downloads": ("unit",),
    "test_finish": ("ffmpeg",),
    "test_generation": ("tiny", "ffmpeg", "e2e"),
    "test_luts": ("unit",),
    "test_memory_hardware": ("unit",),
    "test_memory_manager": ("unit",),
    "test_memory_plans": ("unit",),
    "test_model_registry": ("unit",),
    "test_motion": ("unit",),
    "test_oom": ("tiny",),
    "test_prompting": ("unit",),
    "test_reliability_faults": ("e2e",),
    "test_reliability_resume": ("tiny", "ffmpeg", "e2e"),
    "test_security": ("unit",),
    "test_spec": ("unit",),
    "test_store": ("unit",),
    "test_tiny_models": ("tiny",),
    "test_ui_create": ("ui",),
    "test_ui_e2e": ("ui", "tiny", "e2e"),
    "test_ui_monitor": ("ui",),
    "test_ui_pages": ("ui",),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = []
    for item in items:
        if any(item.get_closest_marker(name) for name in LAYER_MARKERS):
            continue
        module = item.module.__name__.rpartition(".")[2]
        layers = MODULE_LAYERS.get(module)
        if layers is None:
            unmarked.append(item.nodeid)
            continue
        for name in layers:
            item.add_marker(getattr(pytest.mark, name))
    if unmarked:  # a new test module must say which layer it belongs to
        raise pytest.UsageError(f"tests without a layer marker ({', '.join(LAYER_MARKERS)}): {unmarked[:5]}")

"""The tiny random-weight model set: test models — output is noise.

Each entry is a real diffusers pipeline built from small configs with random (seeded) weights,
saved with ``save_pretrained`` and loaded back by the ordinary ``Pipeline.from_pretrained(folder)``
loader, exactly like a hub model. It proves loading, memory settings, callbacks, frame counts and
encoding without network access or a GPU; it says nothing about quality. Never substitute it
silently for a real model.

Models are built on first use into ``<models_root>/tiny/<name>`` and cached. A build goes into a
temporary sibling folder, gets a ``.complete`` marker after ``save_pretrained`` has finished, and is
then renamed into place, so a killed build never looks complete. An fcntl lock beside the folder
keeps two processes from building the same model at once.

Importing this module is cheap: torch, diffusers and transformers are imported by the builders.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

TINY_LABEL = "test models — output is noise"

# name -> diffusers pipeline class that from_pretrained(folder) should be called on.
TINY_MODELS: dict[str, str] = {
    "sdxl": "StableDiffusionXLPipeline",  # img2img: StableDiffusionXLImg2ImgPipeline.from_pipe
    "svd": "StableVideoDiffusionPipeline",
    "cogvideox-t2v": "CogVideoXPipeline",
    "cogvideox-i2v": "CogVideoXImageToVideoPipeline",
    "wan-flf2v": "WanImageToVideoPipeline",  # first-last-frame: image=first, last_image=last
    "ltx-condition": "LTXConditionPipeline",  # keyframes: conditions=[LTXVideoCondition(...), ...]
    # V2V: SkyReelsV2DiffusionForcingVideoToVideoPipeline(**pipe.components) on the same components
    "skyreels-df": "SkyReelsV2DiffusionForcingImageToVideoPipeline",
}

# Bump when a builder changes, so cached folders from an older build are rebuilt.
FORMAT_VERSION = "2"  # 2: CogVideoX learned positional embeddings; LTX, SkyReels DF
MARKER_NAME = ".complete"
_BUILDING_PREFIX = ".building-"


def _check_name(name: str) -> None:
    if name not in TINY_MODELS:
        valid = ", ".join(sorted(TINY_MODELS))
        raise ValueError(f"unknown tiny model {name!r}; valid names: {valid}")


def tiny_model_dir(name: str, models_root: Path) -> Path:
    """Folder of the tiny model ``name``: ``models_root / "tiny" / name``."""
    _check_name(name)
    return Path(models_root) / "tiny" / name


def is_tiny_model_complete(folder: Path) -> bool:
    """True if ``folder`` holds a finished build of the current format."""
    folder = Path(folder)
    marker = folder / MARKER_NAME
    if not (marker.is_file() and (folder / "model_index.json").is_file()):
        return False
    return marker.read_text(encoding="utf-8").strip() == FORMAT_VERSION


def ensure_tiny_model(name: str, models_root: Path) -> Path:
    """Return the folder of tiny model ``name``, building it first if missing or incomplete."""
    folder = tiny_model_dir(name, models_root)
    if is_tiny_model_complete(folder):
        return folder  # fast path: no lock needed to read a finished folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(folder):
        # Another process may have finished the build while this one waited for the lock.
        if is_tiny_model_complete(folder):
            return folder
        _remove_leftovers(folder)
        _build(name, folder)
    return folder


@contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    lock_path = folder.parent / f".{folder.name}.lock"
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(folder: Path) -> None:
    """Remove a half-built folder and temp folders of killed builds (caller holds the lock)."""
    if folder.exists():
        logger.warning("Tiny model folder %s is incomplete; rebuilding it", folder)
        shutil.rmtree(folder)
    for stale in folder.parent.glob(f".{folder.name}{_BUILDING_PREFIX}*"):
        logger.info("Removing a killed build's temp folder %s", stale)
        shutil.rmtree(stale, ignore_errors=True)


def marked_complete(folder: Path, version: str) -> bool:
    """True if ``folder`` holds a finished build of ``version`` (its marker is written last)."""
    marker = Path(folder) / MARKER_NAME
    return marker.is_file() and marker.read_text(encoding="utf-8").strip() == version


def build_once(folder: Path, version: str, build: Callable[[Path], None]) -> Path:
    """``folder`` built by ``build(staging)`` once: in a temp sibling, marked complete last, renamed into place,
    under the build lock (a killed build never looks complete; two processes never build it twice)."""
    folder = Path(folder)
    if marked_complete(folder, version):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(folder):
        if marked_complete(folder, version):  # another process built it while this one waited
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}{_BUILDING_PREFIX}", dir=folder.parent))
        try:
            build(staging)
            (staging / MARKER_NAME).write_text(version + "\n", encoding="utf-8")
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _build(name: str, folder: Path) -> None:
    import torch

    from backend.models.tiny_configs import BUILDERS

    logger.info("Building tiny model %r (%s) in %s", name, TINY_LABEL, folder)
    started = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}{_BUILDING_PREFIX}", dir=folder.parent))
    try:
        output = staging / "model"
        # fork_rng: seeding the weights must not change the caller's random state.
        with torch.random.fork_rng(devices=[]):
            pipeline = BUILDERS[name](staging / "work")
        pipeline.save_pretrained(output, safe_serialization=True)
        (output / MARKER_NAME).write_text(FORMAT_VERSION + "\n", encoding="utf-8")
        os.replace(output, folder)  # atomic on one filesystem; folder was removed under the lock
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Built tiny model %r in %.1f s (%s)", name, time.monotonic() - started, TINY_LABEL)

"""Finishing models (an upscaler, RIFE): single weights files, found, fetched or built like other models.

A real preset's file lives in ``<models_root>/<key>/`` (fetched from its Hub repository with
``python -m backend models download KEY``, or put there by hand); the tiny test twins are random-weight
networks built on first use into ``<models_root>/tiny/<name>/`` and then loaded from their file exactly as
a downloaded file is (spandrel for the upscaler, ``backend.models.rife`` for RIFE). A missing file, or one
that is not the published file a preset is pinned to (its SHA-256), is one sentence naming the fix.

    python -m backend models download realesrgan-x4plus
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path

from backend.errors import ModelNotAvailable
from backend.models.registry import ModelRef

log = logging.getLogger(__name__)

FORMAT_VERSION = "2"  # 2: the tiny RIFE in the published 4.7-4.9 layout
MARKER_NAME = ".complete"
TINY_UPSCALER = {"num_feat": 8, "num_conv": 2, "upscale": 2}  # spandrel's Compact (SRVGGNetCompact)
TINY_RIFE_WIDTHS = (16, 12, 8, 8)  # the published blocks: 192, 128, 96, 64


def weights_file(ref: ModelRef, models_root: Path) -> Path:
    """The file holding ``ref``'s weights; builds a tiny twin on first use, ModelNotAvailable otherwise."""
    if ref.is_tiny:
        return _ensure_tiny(ref, Path(models_root))
    folder = Path(models_root) / ref.key
    found = _matching(folder, ref)
    if found is not None:
        problem = pin_problem(ref, found)
        if problem:
            raise ModelNotAvailable(f"{problem} Delete it and run `python -m backend models download {ref.key}`, "
                                    f"or choose {_no_download_method(ref)}.")
        return found
    if ref.repo_id:
        fix = (f"run `python -m backend models download {ref.key}` (fetches {ref.allow_patterns[0]} "
               f"from {ref.hub_url} into {folder})")
    else:
        fix = f"it has no public download, so put {ref.allow_patterns[0]} into {folder}"
    raise ModelNotAvailable(f"{ref.label} is not downloaded: {fix}, or choose the method that needs no "
                            f"download ({_no_download_method(ref)}).")


def _no_download_method(ref: ModelRef) -> str:
    return "--interpolation flow" if ref.pipeline_class == "IFNet" else "--upscale lanczos"


def unpinned_file(ref: ModelRef, models_root: Path) -> tuple[Path, str] | None:
    """The file of a real preset that is there but is not the published one, with the sentence saying so."""
    if ref.is_tiny:
        return None
    found = _matching(Path(models_root) / ref.key, ref)
    problem = pin_problem(ref, found) if found is not None else None
    return (found, problem) if found is not None and problem else None


def pin_problem(ref: ModelRef, path: Path) -> str | None:
    """A sentence when ``path`` is not the published file ``ref`` is pinned to (its SHA-256), else None."""
    if not ref.sha256:
        return None
    from backend.hashing import file_sha256

    found = file_sha256(path)
    if found == ref.sha256:
        return None
    return (f"{path.name} is not the published {ref.label} file (SHA-256 {found[:12]}…, expected "
            f"{ref.sha256[:12]}…): it is damaged, or a different release.")


def _matching(folder: Path, ref: ModelRef) -> Path | None:
    if not folder.is_dir():
        return None
    for path in sorted(folder.iterdir()):
        if path.is_file() and any(fnmatch.fnmatch(path.name, p) for p in ref.allow_patterns):
            return path
    return None


# --- the tiny twins ----------------------------------------------------------------------------------

def _ensure_tiny(ref: ModelRef, models_root: Path) -> Path:
    from backend.models.tiny import build_once

    name = ref.allow_patterns[0]
    folder = build_once(models_root / "tiny" / str(ref.tiny_name), FORMAT_VERSION,
                        lambda staging: BUILDERS[str(ref.tiny_name)](staging / name))
    return folder / name


def build_tiny_upscaler(path: Path) -> None:
    """A random-weight SRVGGNetCompact (Real-ESRGAN's compact family), saved as BasicSR releases are."""
    import torch
    from spandrel.architectures.Compact import Compact

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = Compact(**TINY_UPSCALER)
    torch.save({"params": net.state_dict()}, path)


def build_tiny_rife(path: Path) -> None:
    """A random-weight IFNet with narrow blocks, saved as the published RIFE ``.pth`` files are (a state dict)."""
    import torch

    from backend.models.rife import IFNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = IFNet(TINY_RIFE_WIDTHS)
    torch.save(net.state_dict(), path)


BUILDERS = {"upscaler": build_tiny_upscaler, "rife": build_tiny_rife}

"""Finishing models (an upscaler, RIFE): single weights files, found, fetched or built like other models.

A real preset's file lives in ``<models_root>/<key>/`` (fetched from its Hub repository with
``download_weights``, or put there by hand); the tiny test twins are random-weight networks built on
first use into ``<models_root>/tiny/<name>/`` and then loaded from their file exactly as a downloaded
file is (spandrel for the upscaler, safetensors for RIFE). A missing file is one sentence naming the fix.

    python -m backend models download realesrgan-x4plus   (or: python -m backend.models.finishing download …)
"""

from __future__ import annotations

import fnmatch
import json
import logging
import sys
from pathlib import Path

from backend.errors import DownloadError, ModelNotAvailable
from backend.models.download_command import run_download_command
from backend.models.registry import FINISHING_MODELS, ModelRef

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
MARKER_NAME = ".complete"
TINY_UPSCALER = {"num_feat": 8, "num_conv": 2, "upscale": 2}  # spandrel's Compact (SRVGGNetCompact)
TINY_RIFE = {"channels": [16, 12, 8], "depth": 1}


def weights_file(ref: ModelRef, models_root: Path) -> Path:
    """The file holding ``ref``'s weights; builds a tiny twin on first use, ModelNotAvailable otherwise."""
    if ref.is_tiny:
        return _ensure_tiny(ref, Path(models_root))
    folder = Path(models_root) / ref.key
    found = _matching(folder, ref)
    if found is not None:
        return found
    if ref.repo_id:
        fix = (f"run `python -m backend models download {ref.key}` (fetches {ref.allow_patterns[0]} "
               f"from {ref.hub_url} into {folder})")
    else:
        fix = (f"no public checkpoint in the studio's format is published yet, so put {ref.allow_patterns[0]} "
               f"(and its .json config) into {folder}")
    raise ModelNotAvailable(f"{ref.label} is not downloaded: {fix}, or choose the method that needs no "
                            f"download ({'--interpolation flow' if ref.pipeline_class == 'IFNet' else '--upscale lanczos'}).")


def _matching(folder: Path, ref: ModelRef) -> Path | None:
    if not folder.is_dir():
        return None
    for path in sorted(folder.iterdir()):
        if path.is_file() and any(fnmatch.fnmatch(path.name, p) for p in ref.allow_patterns):
            return path
    return None


def download_weights(ref: ModelRef, models_root: Path, *, token: str | None = None) -> Path:
    """Fetch ``ref``'s weights file from its Hub repository into ``<models_root>/<key>/``."""
    if not ref.repo_id:
        raise DownloadError(f"{ref.key} has no Hub repository to download from.")
    from huggingface_hub import hf_hub_download

    folder = Path(models_root) / ref.key
    folder.mkdir(parents=True, exist_ok=True)
    try:
        path = hf_hub_download(ref.repo_id, ref.allow_patterns[0], revision=ref.revision, local_dir=folder,
                               token=token)
    except Exception as exc:  # noqa: BLE001 - the hub's many failures become one sentence
        raise DownloadError(f"Could not download {ref.key} from {ref.hub_url}: {exc}") from exc
    return Path(path)


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
    import torch
    from safetensors.torch import save_file

    from backend.models.rife import IFNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = IFNet(**TINY_RIFE)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps(TINY_RIFE), encoding="utf-8")


BUILDERS = {"upscaler": build_tiny_upscaler, "rife": build_tiny_rife}


def main(argv: list[str] | None = None) -> int:
    return run_download_command("backend.models.finishing", FINISHING_MODELS, download_weights, argv)

if __name__ == "__main__":
    sys.exit(main())

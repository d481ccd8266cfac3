"""Where model files live on disk, whether a download finished, and what is there.

A folder counts as a model only once a completeness marker was written after a successful
download: the hub's offline mode can return a half-downloaded folder without error. The marker
lists every file with its size, so ``verify`` notices files that went missing or were cut short.
A user can also point a preset at a folder they already have (``link``); that folder is never
deleted by ``remove``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from backend.errors import ModelFolderError
from backend.models.registry import ModelRef

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".studio-complete"
OVERRIDES_FILE = "local-overrides.json"  # preset key -> folder a user pointed it at
HUB_CACHE_DIR = ".cache"  # huggingface_hub's resume metadata inside a local_dir download
GIB = 1024**3


@dataclass(frozen=True)
class ModelStatus:
    key: str
    state: str  # "downloaded" | "linked" | "partial" | "missing" | "built" | "not built"
    folder: Path | None
    bytes_on_disk: int

    @property
    def ready(self) -> bool:
        return self.state in ("downloaded", "linked", "built")


def model_folder(ref: ModelRef, models_root: Path) -> Path:
    return models_root / ref.key


def local_overrides(models_root: Path) -> dict[str, str]:
    path = models_root / OVERRIDES_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("ignoring unreadable %s", path)
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def local_folder(ref: ModelRef, models_root: Path) -> Path | None:
    """The usable folder for ``ref``: a user-provided one, or a completed download; else None."""
    override = local_overrides(models_root).get(ref.key)
    if override and (Path(override) / "model_index.json").is_file():
        return Path(override)
    folder = model_folder(ref, models_root)
    if (folder / COMPLETE_MARKER).is_file() and (folder / "model_index.json").is_file():
        return folder
    return None


# --- completeness marker ------------------------------------------------------------------------------


def folder_files(folder: Path) -> dict[str, int]:
    """Model files under ``folder`` with their sizes (the hub's resume cache and our marker excluded)."""
    if not folder.is_dir():
        return {}
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0] in (HUB_CACHE_DIR, COMPLETE_MARKER) or not path.is_file():
            continue
        files[rel.as_posix()] = path.stat().st_size
    return files


def bytes_on_disk(folder: Path) -> int:
    """Everything under ``folder``, partial downloads included (they resume)."""
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def write_marker(folder: Path, ref: ModelRef) -> None:
    """Record a finished download: written last, atomically, so a crash never leaves a false marker."""
    data = {"key": ref.key, "repo_id": ref.repo_id, "revision": ref.revision, "variant": ref.variant,
            "completed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": folder_files(folder)}
    tmp = folder / f"{COMPLETE_MARKER}.tmp"
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, folder / COMPLETE_MARKER)


def read_marker(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clear_marker(folder: Path) -> None:
    (folder / COMPLETE_MARKER).unlink(missing_ok=True)


# --- status, verify, remove -------------------------------------------------------------------------


def status(ref: ModelRef, models_root: Path) -> ModelStatus:
    if ref.is_tiny:
        from backend.models.tiny import is_tiny_model_complete, tiny_model_dir

        folder = tiny_model_dir(ref.tiny_name, models_root)
        built = is_tiny_model_complete(folder)
        return ModelStatus(ref.key, "built" if built else "not built", folder if built else None,
                           bytes_on_disk(folder))
    override = local_overrides(models_root).get(ref.key)
    if override:
        folder = Path(override)
        return ModelStatus(ref.key, "linked" if (folder / "model_index.json").is_file() else "missing", folder,
                           bytes_on_disk(folder))
    folder = model_folder(ref, models_root)
    size = bytes_on_disk(folder)
    if local_folder(ref, models_root) is not None:
        return ModelStatus(ref.key, "downloaded", folder, size)
    return ModelStatus(ref.key, "partial" if size else "missing", folder if size else None, size)


def verify(ref: ModelRef, models_root: Path) -> list[str]:
    """Problems with ``ref``'s files on disk, each a sentence; an empty list means it is usable."""
    if ref.is_tiny:
        state = status(ref, models_root).state
        return [] if state == "built" else [f"{ref.key} is not built yet; it is built on first use."]
    override = local_overrides(models_root).get(ref.key)
    if override:
        return _verify_pipeline_folder(Path(override))
    folder = model_folder(ref, models_root)
    marker = read_marker(folder)
    if marker is None:
        state = "partly downloaded" if folder.is_dir() else "not downloaded"
        return [f"{ref.key} is {state}: run `python -m backend models download {ref.key}` (it resumes)."]
    problems = []
    present = folder_files(folder)
    for name, size in dict(marker.get("files", {})).items():
        if name not in present:
            problems.append(f"{name} is missing.")
        elif present[name] != size:
            problems.append(f"{name} has {present[name]:,} bytes, expected {size:,}.")
    return problems + _verify_pipeline_folder(folder)


def _verify_pipeline_folder(folder: Path) -> list[str]:
    """A diffusers folder: model_index.json, and each component folder it names, with weights where needed."""
    index_path = folder / "model_index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [f"{folder} has no readable model_index.json: it is not a diffusers pipeline folder."]
    problems = []
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        component = folder / name
        if not component.is_dir():
            problems.append(f"component folder {name}/ is missing.")
        elif (component / "config.json").is_file() and not _has_weights(component):
            problems.append(f"component {name}/ has no weight files.")
    return problems


def _has_weights(component: Path) -> bool:
    return any(next(component.glob(pattern), None) is not None for pattern in ("*.safetensors", "*.bin"))


def remove(ref: ModelRef, models_root: Path) -> str:
    """Delete ``ref``'s downloaded (or built) files; a linked folder is only unlinked. Says what it did."""
    if ref.is_tiny:
        from backend.models.tiny import tiny_model_dir

        folder = tiny_model_dir(ref.tiny_name, models_root)
    else:
        folder = model_folder(ref, models_root)
    said = []
    if not ref.is_tiny and ref.key in local_overrides(models_root):
        unlink(ref, models_root)
        said.append("unlinked the folder it pointed at (left untouched)")
    if folder.exists():
        freed = bytes_on_disk(folder)
        shutil.rmtree(folder)
        said.append(f"deleted {folder} ({freed / GIB:.1f} GB)")
    return f"{ref.key}: " + ("; ".join(said) if said else "nothing to remove") + "."


# --- user folders -----------------------------------------------------------------------------------


def link(ref: ModelRef, folder: Path, models_root: Path) -> Path:
    """Point ``ref`` at a pipeline folder the user already has (checked, never copied or changed)."""
    if ref.is_tiny:
        raise ModelFolderError(f"{ref.key} is a test model built on demand; it cannot point at a folder.")
    folder = Path(folder).expanduser().resolve()
    problems = _verify_pipeline_folder(folder)
    if problems:
        raise ModelFolderError(f"{folder} cannot serve {ref.key}: {problems[0]}")
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    found = index.get("_class_name")
    if found and found != ref.pipeline_class:
        raise ModelFolderError(f"{folder} holds a {found}, but {ref.key} needs a {ref.pipeline_class}.")
    _write_overrides(models_root, {**local_overrides(models_root), ref.key: str(folder)})
    return folder


def unlink(ref: ModelRef, models_root: Path) -> bool:
    overrides = local_overrides(models_root)
    if overrides.pop(ref.key, None) is None:
        return False
    _write_overrides(models_root, overrides)
    return True


def _write_overrides(models_root: Path, overrides: dict[str, str]) -> None:
    models_root.mkdir(parents=True, exist_ok=True)
    tmp = models_root / f"{OVERRIDES_FILE}.tmp"
    tmp.write_text(json.dumps(overrides, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, models_root / OVERRIDES_FILE)

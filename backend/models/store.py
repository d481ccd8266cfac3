"""Where model files live on disk, whether a download finished, and what is there.

A folder counts as a model only once a completeness marker was written after a successful
download: the hub's offline mode can return a half-downloaded folder without error. The marker
lists every file with its size, so ``verify`` notices files that went missing or were cut short.
A user can also point a preset at a folder they already have (``link``); that folder is never
deleted by ``remove``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
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
HUB_METADATA_DIR = Path(HUB_CACHE_DIR, "huggingface", "download")  # <file>.metadata: commit, ETag, time
SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024  # the safetensors format refuses larger headers
GIB = 1024**3
_ETAG = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # git blob sha1 (small files) | sha256 (LFS files)


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


def verify(ref: ModelRef, models_root: Path, *, checksums: bool = False) -> list[str]:
    """Problems with ``ref``'s files on disk, each a sentence; an empty list means it is usable.

    Cheap enough for 20 GB models: sizes, safetensors headers and JSON files (see ``damaged_files``);
    ``checksums`` also hashes every file against the Hub's recorded checksum (slow: reads everything).
    """
    if ref.is_tiny:
        from backend.models.tiny import is_tiny_model_complete, tiny_model_dir

        folder = tiny_model_dir(ref.tiny_name, models_root)
        if not is_tiny_model_complete(folder):
            return [f"{ref.key} is not built yet; it is built on first use."]
        return list(damaged_files(folder, strict=True).values()) + _verify_pipeline_folder(folder)
    override = local_overrides(models_root).get(ref.key)
    if override:
        problems = list(damaged_files(Path(override), checksums=checksums).values())
        return problems + _verify_pipeline_folder(Path(override))
    folder = model_folder(ref, models_root)
    marker = read_marker(folder)
    if marker is None:
        state = "partly downloaded" if folder.is_dir() else "not downloaded"
        return [f"{ref.key} is {state}: run `python -m backend models download {ref.key}` (it resumes)."]
    present = folder_files(folder)
    problems = [f"{name} is missing." for name in dict(marker.get("files", {})) if name not in present]
    problems += damaged_files(folder, checksums=checksums).values()
    return problems + _verify_pipeline_folder(folder)


# --- file contents ----------------------------------------------------------------------------------


def damaged_files(folder: Path, *, checksums: bool = False, strict: bool = False) -> dict[str, str]:
    """Files under ``folder`` whose content is wrong: relative name -> a sentence saying what is wrong.

    Each file must have the size the completeness marker recorded (when there is one); each
    ``*.safetensors`` file's header must parse and describe exactly the file's size (a cut-short file
    is found without loading a tensor); each ``*.json`` must parse. A file that does not even start
    like a safetensors file is damage when ``strict`` or when huggingface_hub recorded downloading
    it (tiny builds and hub downloads always write real safetensors); in a folder of unknown origin it
    is left to the loader. ``checksums``: hash files against the ETag the hub recorded (sha256 for LFS
    files, the git blob hash for small ones); files without a record are not hashed.
    """
    marker = read_marker(folder) or {}
    recorded = marker.get("files") if isinstance(marker.get("files"), dict) else {}
    problems = {}
    for name, size in folder_files(folder).items():
        expected = recorded.get(name)
        if isinstance(expected, int) and expected != size:
            problems[name] = f"{name} has {size:,} bytes, expected {expected:,}."
            continue
        etag = hub_etag(folder, name)
        try:
            problem = _content_problem(folder / name, size, strict=strict or etag is not None)
            if problem is None and checksums and etag is not None:
                problem = _checksum_problem(folder / name, size, etag)
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror or exc})"
        if problem:
            problems[name] = f"{name} {problem}."
    return problems


def hub_etag(folder: Path, name: str) -> str | None:
    """The ETag huggingface_hub recorded for ``name`` when it downloaded it into ``folder`` (a local_dir).

    Its ``.metadata`` file holds three lines: commit hash, ETag, timestamp (huggingface_hub
    ``_local_folder.py``). That ETag is the file's sha256 for LFS files, its git blob sha1 otherwise.
    """
    try:
        lines = (folder / HUB_METADATA_DIR / f"{name}.metadata").read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        return None
    etag = lines[1].strip().strip('"') if len(lines) > 1 else ""
    return etag if _ETAG.fullmatch(etag) else None


def discard_file(folder: Path, name: str) -> None:
    """Delete a damaged file and the hub's record of it, so the next download fetches it again.

    (With its record in place the hub returns the file on disk as it is, damaged or not.)
    """
    (folder / name).unlink(missing_ok=True)
    (folder / HUB_METADATA_DIR / f"{name}.metadata").unlink(missing_ok=True)


def _content_problem(path: Path, size: int, *, strict: bool) -> str | None:
    if path.suffix == ".json":
        try:
            json.loads(path.read_bytes())
        except ValueError:
            return "is not valid JSON (damaged or cut short)"
        return None
    if path.suffix != ".safetensors":
        return None
    with open(path, "rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= SAFETENSORS_MAX_HEADER:
            return f"is not a safetensors file ({size:,} bytes, no valid header)" if strict else None
        if 8 + length > size:
            return f"is cut short inside its header ({size:,} bytes; the header alone needs {8 + length:,})"
        raw = handle.read(length)
    try:
        header = json.loads(raw)
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        if not all(isinstance(end, int) and end >= 0 for end in ends):
            raise ValueError("bad offsets")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "has an unreadable safetensors header (damaged)"
    expected = 8 + length + max(ends, default=0)
    if size != expected:
        state = "cut short" if size < expected else "longer than its header says"
        return f"is {state}: {size:,} bytes, its header describes {expected:,}"
    return None


def _checksum_problem(path: Path, size: int, etag: str) -> str | None:
    digest = hashlib.sha256() if len(etag) == 64 else hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != etag:
        return f"does not match the checksum the Hub gave for it ({etag[:12]}…): its content is damaged"
    return None


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

"""Delivered files: readable names, the sidecar reproducibility record, previews and versions."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import unicodedata
from datetime import datetime
from importlib import metadata
from pathlib import Path

from PIL import Image

import backend
from backend.jobs.model_sources import comment_line
from backend.record import JobRecord

PREVIEW_WIDTH = 480


def output_stem(prompt: str, job_id: str, when: datetime | None = None) -> str:
    """``2026-11-20_153012_ocean-waves-crashing_ab12cd34``: sortable, readable, unique."""
    when = when or datetime.now()
    return f"{when:%Y-%m-%d_%H%M%S}_{slugify(prompt)}_{job_id[:8]}"


def slugify(text: str, limit: int = 40) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "video"


def software_versions() -> dict[str, str]:
    versions = {"studio": backend.__version__, "python": platform.python_version()}
    for package in ("torch", "diffusers", "transformers", "accelerate", "huggingface_hub", "imageio-ffmpeg"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        import imageio_ffmpeg

        versions["ffmpeg"] = imageio_ffmpeg.get_ffmpeg_version()
    except (ImportError, RuntimeError, OSError, subprocess.SubprocessError):
        versions["ffmpeg"] = "unavailable"
    return versions


def write_sidecar(path: Path, record: JobRecord) -> Path:
    """Write the record as JSON atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path


def compact_comment(record: JobRecord) -> str:
    """The short copy of the record embedded in the MP4's ``comment`` tag."""
    spec = record.spec
    compact = {
        "studio": record.software.get("studio"),
        "job": record.id,
        "prompt": spec.get("prompt"),
        "seed": spec.get("seed"),
        "mode": spec.get("mode"),
        "preset": spec.get("preset"),
        "engine": spec.get("engine"),
        "model_set": spec.get("model_set"),
        "duration": spec.get("duration"),
        "fps": spec.get("fps"),
        "models": {"keyframes": record.models.keyframes, "motion": record.models.motion},
    }
    if record.models.sources:  # the pinned weights: key@commit (or a file's hash), enough to fetch them again
        compact["weights"] = comment_line(record.models.sources)
    if spec.get("model_set") == "tiny":
        compact["note"] = "test models - output is noise"
    return json.dumps(compact, ensure_ascii=False, separators=(",", ":"))


def save_previews(keyframes: list[Path], folder: Path) -> list[Path]:
    """Small JPEG copies of the keyframes for the storyboard and gallery (outlive the temp folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for index, source in enumerate(keyframes):
        with Image.open(source) as image:
            image = image.convert("RGB")
            if image.width > PREVIEW_WIDTH:
                image = image.resize((PREVIEW_WIDTH, round(image.height * PREVIEW_WIDTH / image.width)),
                                     Image.Resampling.LANCZOS)
            target = folder / f"keyframe_{index:03d}.jpg"
            image.save(target, quality=88)
            saved.append(target)
    return saved

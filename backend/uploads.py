"""Uploaded files: checked by content, stored under ``uploads/`` with names we generate.

The name a browser (or a CLI user) gave a file is only ever *shown*; it never becomes part of a
path. Images must decode fully and stay under a pixel budget; videos must probe with ffmpeg and
contain frames.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_UPLOAD_BYTES = 500 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # ~ 8K×5K; larger is a decompression bomb or a mistake
MIN_IMAGE_SIDE = 64
IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp"}


class UploadError(ValueError):
    """An upload we refuse; the message tells the user why."""


@dataclass(frozen=True)
class StoredUpload:
    path: Path
    kind: str  # "image" | "video" | "lut"
    display_name: str  # the client's name, for display only
    summary: str  # e.g. "1280×720 PNG" or "5.0 s, 120 frames, 1280×720 h264"


def _check_size(data: bytes) -> None:
    if not data:
        raise UploadError("The file is empty (0 bytes).")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"The file is {len(data) / 1e6:.0f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")


def _generated_path(folder: Path, data: bytes, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:20]
    return folder / f"{digest}{suffix}"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def open_checked_image(data: bytes) -> Image.Image:
    """Decode fully (truncated files fail here, not mid-job) within the pixel budget."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            width, height = probe.size
            if width * height > MAX_IMAGE_PIXELS:
                raise UploadError(
                    f"The image is {width}×{height} pixels; the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels.")
            probe.verify()
        if fmt not in IMAGE_FORMATS:
            raise UploadError(f"Images must be PNG, JPEG, WebP or BMP (this one is {fmt}).")
        image = Image.open(io.BytesIO(data))
        image.load()
    except UploadError:
        raise
    except Image.DecompressionBombError as exc:
        raise UploadError("The image is too large to decode safely (possible decompression bomb).") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadError("This file is not a readable image (it may be truncated or of another type).") from exc
    if min(image.size) < MIN_IMAGE_SIDE:
        raise UploadError(f"The image is {image.width}×{image.height}; it must be at least {MIN_IMAGE_SIDE} pixels"
                          " on each side.")
    return image


def store_image(data: bytes, display_name: str, uploads: Path) -> StoredUpload:
    _check_size(data)
    image = open_checked_image(data)
    path = _generated_path(uploads / "images", data, IMAGE_FORMATS[image.format or "PNG"])
    _write_atomic(path, data)
    return StoredUpload(path, "image", display_name, f"{image.width}×{image.height} {image.format}")


def store_video(data: bytes, display_name: str, uploads: Path) -> StoredUpload:
    from backend.video_io import VideoProbeError, probe_video

    _check_size(data)
    path = _generated_path(uploads / "videos", data, ".video")
    tmp = path.with_name(path.name + ".checking")
    tmp.write_bytes(data)
    try:
        info = probe_video(tmp)
    except VideoProbeError as exc:
        tmp.unlink(missing_ok=True)
        raise UploadError(f"This file is not a usable video: {exc}") from exc
    final = path.with_suffix(".mp4" if info.codec in ("h264", "hevc", "mpeg4", "av1") else ".mkv")
    os.replace(tmp, final)
    summary = f"{info.duration:.1f} s, {info.frames} frames, {info.width}×{info.height} {info.codec}"
    return StoredUpload(final, "video", display_name, summary)


def load_image(path: Path) -> Image.Image:
    """Re-open a stored image for a job, with the same checks as at upload time."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UploadError(f"The input image is missing ({exc.strerror}); upload it again.") from exc
    return open_checked_image(data).convert("RGB")

"""Uploaded files: checked by content, stored under ``uploads/`` with names we generate.

The name a browser (or a CLI user) gave a file is only ever *shown* (cleaned of control
characters and folders first); it never becomes part of a path. Images must decode fully and stay
under a pixel budget; videos must be in a known container (checked by their first bytes, so a
renamed executable or an ffmpeg playlist that points at other files never reaches ffmpeg), probe
with ffmpeg and contain frames. Files are written under a unique temporary name and renamed, so
two uploads of the same file at once cannot trip over each other and no half file is ever visible.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from backend.errors import UploadError

MAX_UPLOAD_BYTES = 500 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # ~ 8K×5K; larger is a decompression bomb or a mistake
MIN_IMAGE_SIDE = 64
IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp"}
MAX_DISPLAY_NAME = 120
VIDEO_CONTAINERS = "MP4, MOV, M4V, MKV, WebM or AVI"
# Atoms an MP4/MOV file starts with (older QuickTime files may open with wide/mdat/moov, not ftyp).
QUICKTIME_ATOMS = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


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


def clean_display_name(name: object) -> str:
    """The client's file name made safe to show: last path part only, no control characters, capped."""
    text = str(name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in unicodedata.normalize("NFC", text) if unicodedata.category(c)[0] != "C")
    text = text.strip()
    if text in (".", ".."):
        text = ""
    if len(text) > MAX_DISPLAY_NAME:
        text = text[: MAX_DISPLAY_NAME - 1] + "…"
    return text or "upload"


display_name = clean_display_name  # the name app_pages imports


def _generated_path(folder: Path, data: bytes, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:20]
    return folder / f"{digest}{suffix}"


def _write_temp(folder: Path, data: bytes) -> Path:
    """Write ``data`` under a fresh hidden name in ``folder`` (unique per call, never a client name)."""
    handle, name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _write_atomic(path: Path, data: bytes) -> None:
    os.replace(_write_temp(path.parent, data), path)


def video_container(data: bytes) -> str | None:
    """The container named by the file's first bytes, or None if it is not one we accept."""
    head = data[:64]
    if head[4:8] in QUICKTIME_ATOMS:
        return "mp4/mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska/webm"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


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
        # A phone's portrait photo is stored sideways with an EXIF rotation: show it the way it was taken.
        image = ImageOps.exif_transpose(image)
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
    shown = clean_display_name(display_name)
    return StoredUpload(path, "image", shown, f"{image.width}×{image.height} {image.format}")


def store_video(data: bytes, display_name: str, uploads: Path) -> StoredUpload:
    from backend.errors import VideoProbeError
    from backend.media.video_io import probe_video

    _check_size(data)
    container = video_container(data)
    if container is None:
        raise UploadError(f"This file is not a video file ffmpeg may open here; use {VIDEO_CONTAINERS}.")
    path = _generated_path(uploads / "videos", data, ".video")
    tmp = _write_temp(path.parent, data)
    try:
        info = probe_video(tmp)
    except VideoProbeError as exc:
        tmp.unlink(missing_ok=True)
        raise UploadError(f"This file is not a usable video: {_one_line(str(exc))}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The suffix names the container (what the bytes are), so ffmpeg and players pick the right reader.
    final = path.with_suffix({"mp4/mov": ".mp4", "matroska/webm": ".mkv", "avi": ".avi"}[container])
    os.replace(tmp, final)
    summary = f"{info.duration:.1f} s, {info.frames} frames, {info.width}×{info.height} {info.codec}"
    return StoredUpload(final, "video", clean_display_name(display_name), summary)


def _one_line(reason: str) -> str:
    """ffmpeg's failures can carry its whole banner (and our temp path): keep the first clause only."""
    lines = reason.strip().splitlines() or [""]
    if len(lines) == 1 and len(lines[0]) <= 200:
        return lines[0]
    return lines[0].split(" (", 1)[0].rstrip(" .:")[:200] + "."


def load_image(path: Path) -> Image.Image:
    """Re-open a stored image for a job, with the same checks as at upload time."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UploadError(f"The input image is missing ({exc.strerror}); upload it again.") from exc
    return open_checked_image(data).convert("RGB")


def store_lut(data: bytes, client_name: str, uploads: Path) -> StoredUpload:
    """Check a .cube file by content and store the normalised copy ffmpeg will read (generated name)."""
    from backend.media import luts

    if not data:
        raise UploadError("The file is empty (0 bytes).")
    if len(data) > luts.MAX_FILE_BYTES:
        raise UploadError(f"The LUT is {len(data) / 2**20:.0f} MB; the limit is {luts.MAX_FILE_BYTES // 2**20} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError("This is not a text .cube file.") from exc
    cube = luts.parse_cube(text, name=display_name(client_name))  # LutError (a ValueError) names the line
    folder = uploads / "luts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:20]}.cube"
    tmp = path.with_name(path.name + ".tmp")
    luts.write_cube(cube, tmp)
    os.replace(tmp, path)
    return StoredUpload(path, "lut", display_name(client_name), f"{cube.size}×{cube.size}×{cube.size} LUT")

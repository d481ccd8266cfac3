"""Reading and probing video files with the bundled ffmpeg (imageio-ffmpeg ships no ffprobe)."""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)


class VideoProbeError(ValueError):
    """The file is not a video we can read; the message is for the user."""


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int
    codec: str
    duration: float
    comment: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


_STREAM = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"([\d.]+) fps")
_COMMENT = re.compile(r"^\s*comment\s*:\s?(.*)$", re.MULTILINE)


def probe_video(path: Path) -> VideoInfo:
    """Frame count, fps, size and codec of ``path``; VideoProbeError if it has no readable video."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise VideoProbeError("The video file is empty or missing.")
    header = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True, text=True, errors="replace", timeout=60,
    ).stderr
    stream = _STREAM.search(header)
    if stream is None:
        raise VideoProbeError("The file has no video stream that ffmpeg can read.")
    fps_match = _FPS.search(header[stream.start():])
    try:
        frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError) as exc:
        raise VideoProbeError(f"ffmpeg could not decode the video ({exc}).") from exc
    if frames <= 0:
        raise VideoProbeError("The video has no frames.")
    comment = _COMMENT.search(header)
    return VideoInfo(
        frames=frames,
        fps=float(fps_match.group(1)) if fps_match else 0.0,
        width=int(stream.group(2)),
        height=int(stream.group(3)),
        codec=stream.group(1),
        duration=float(seconds),
        comment=comment.group(1).strip() if comment else "",
    )


def iter_frames(path: Path) -> Iterator[np.ndarray]:
    """Decode ``path`` as RGB uint8 frames of shape (H, W, 3), one at a time."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(reader)
    width, height = meta["size"]
    try:
        for raw in reader:
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
    finally:
        reader.close()


def last_frame(path: Path) -> np.ndarray:
    frame = None
    for frame in iter_frames(path):
        pass
    if frame is None:
        raise VideoProbeError("The video has no frames.")
    return frame.copy()

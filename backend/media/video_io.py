"""Reading and probing video files with the bundled ffmpeg (imageio-ffmpeg ships no ffprobe)."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from backend.errors import ToolMissing, VideoProbeError

log = logging.getLogger(__name__)

FFMPEG_CHECK_S = 30


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


def check_ffmpeg() -> str:
    """The ffmpeg executable, if it is there and runs; else ToolMissing with what to do about it."""
    fix = "Reinstall the studio (./launch.sh) or correct IMAGEIO_FFMPEG_EXE."
    try:
        exe = ffmpeg_exe()
    except RuntimeError as exc:
        raise ToolMissing(f"ffmpeg is not installed ({exc}). {fix}") from exc
    if shutil.which(exe) is None:
        raise ToolMissing(f"ffmpeg was not found or cannot be run at {exe}. {fix}")
    try:
        done = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, timeout=FFMPEG_CHECK_S)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolMissing(f"ffmpeg at {exe} cannot be run ({exc}). {fix}") from exc
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()[:1]
        raise ToolMissing(f"ffmpeg at {exe} does not work (exit status {done.returncode}"
                          f"{': ' + said[0][:200] if said else ''}). {fix}")
    return exe


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
        log.info("decoding %s failed: %s", path, exc)  # the full ffmpeg banner is for the log, not the user
        raise VideoProbeError("ffmpeg could not decode the video: the file is damaged or uses an"
                              " unsupported codec.") from exc
    if frames <= 0:
        raise VideoProbeError("The video has no frames.")
    return VideoInfo(
        frames=frames,
        fps=float(fps_match.group(1)) if fps_match else 0.0,
        width=int(stream.group(2)),
        height=int(stream.group(3)),
        codec=stream.group(1),
        duration=float(seconds),
        comment=read_metadata(path).get("comment", ""),
    )


def read_metadata(path: Path) -> dict[str, str]:
    """Container tags in full (the ``-i`` banner truncates long values such as our JSON comment)."""
    result = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-f", "ffmetadata", "-"],
        capture_output=True, text=True, errors="replace", timeout=60,
    )
    tags: dict[str, str] = {}
    for line in result.stdout.splitlines()[1:]:
        key, sep, value = line.partition("=")
        if sep and not key.startswith((";", "[")):
            # ffmetadata escapes '=', ';', '#', '\\' and newlines with a backslash.
            tags[key.lower()] = re.sub(r"\\(.)", r"\1", value)
    return tags


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
    return last_frames(path, 1)[-1]


def last_frames(path: Path, count: int) -> list[np.ndarray]:
    """The last ``count`` frames (fewer if the video is shorter), decoding once with ``count`` in memory."""
    from collections import deque

    kept: deque[np.ndarray] = deque(maxlen=max(1, count))
    for frame in iter_frames(path):
        kept.append(frame.copy())
    if not kept:
        raise VideoProbeError("The video has no frames.")
    return list(kept)


_ANY_STREAM = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d{1,5})x(\d{1,5})")
_PACKETS = re.compile(r"^frame=(\d+)\s*$", re.MULTILINE)


def probe_video_fast(path: Path) -> VideoInfo:
    """Like ``probe_video`` but counts packets instead of decoding: seconds saved on long 1080p files.

    The stream is copied to the null muxer, so the count is of coded frames in the container (one
    per frame for H.264/MPEG-4/GIF). Used to verify freshly written outputs, where decoding the
    whole file again would cost a large share of the encode time.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise VideoProbeError("The video file is empty or missing.")
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy",
         "-f", "null", "-", "-progress", "pipe:1"],
        capture_output=True, text=True, errors="replace", timeout=120,
    )
    stream = _ANY_STREAM.search(result.stderr)
    counts = _PACKETS.findall(result.stdout)
    if result.returncode != 0 or stream is None or not counts:
        raise VideoProbeError("The file has no video stream that ffmpeg can read.")
    frames = int(counts[-1])
    if frames <= 0:
        raise VideoProbeError("The video has no frames.")
    fps_match = _FPS.search(result.stderr[stream.start():])
    fps = float(fps_match.group(1)) if fps_match else 0.0
    return VideoInfo(
        frames=frames,
        fps=fps,
        width=int(stream.group(2)),
        height=int(stream.group(3)),
        codec=stream.group(1),
        duration=frames / fps if fps else 0.0,
        comment=read_metadata(path).get("comment", ""),
    )

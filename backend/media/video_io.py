"""Reading and probing video files with the bundled ffmpeg (imageio-ffmpeg ships no ffprobe)."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from backend.errors import ToolMissing, VideoProbeError

log = logging.getLogger(__name__)

FFMPEG_CHECK_S = 30
_DAMAGED = "ffmpeg could not decode the video: the file is damaged or uses an unsupported codec."


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
    """Frame count, fps, size and codec of ``path``; VideoProbeError if it has no readable video.

    Decodes the whole stream (so a damaged file is noticed); the frame rate comes from the packet
    timestamps, exactly as in ``probe_video_fast``.
    """
    import imageio_ffmpeg

    path = Path(path)
    listing = _packet_listing(path)
    try:
        frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError) as exc:
        log.info("decoding %s failed: %s", path, exc)  # the full ffmpeg banner is for the log, not the user
        raise VideoProbeError(_DAMAGED) from exc
    if frames <= 0:
        raise VideoProbeError("The video has no frames.")
    return listing.info(frames, fallback_seconds=float(seconds), comment=read_metadata(path).get("comment", ""))


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


def probe_video_fast(path: Path) -> VideoInfo:
    """Like ``probe_video`` but counts packets instead of decoding: seconds saved on long 1080p files.

    The stream is copied, not decoded, so the count is of coded frames in the container (one per
    frame for H.264/MPEG-4/GIF). Used to verify freshly written outputs, where decoding the whole
    file again would cost a large share of the encode time.
    """
    listing = _packet_listing(Path(path))
    if not listing.packets:
        raise VideoProbeError("The video has no frames.")
    return listing.info(len(listing.packets), comment=read_metadata(path).get("comment", ""))


# --- the frame rate, from packet timestamps ---------------------------------------------------------
#
# ffmpeg's banner prints rates for people ("29.97 fps" for 30000/1001, "1k fps" for 1000), so the
# rate is measured instead: the video stream is copied (not decoded) into the framecrc muxer, which
# lists every packet's pts and duration in the stream's time base. ``frames / (end - start)`` is
# exact for constant-rate MP4/MOV/AVI; containers that round timestamps (Matroska: milliseconds)
# give a close value, which is snapped to the banner's rate when that is within 0.5 %.

_STREAM_LINE = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d{1,5})x(\d{1,5}).*")
_BANNER_FPS = re.compile(r",\s*(\d+(?:\.\d+)?)(k?) fps\b")
_TIME_BASE = re.compile(r"^#tb 0: (\d+)/(\d+)\s*$", re.MULTILINE)
_SNAP_TOLERANCE = 0.005


@dataclass(frozen=True)
class _Listing:
    codec: str
    width: int
    height: int
    packets: tuple[tuple[int, int], ...]  # (pts, duration) in ``time_base`` units, in file order
    time_base: Fraction
    banner_fps: float  # what the banner says (0.0 if nothing), a hint only

    def seconds(self) -> float:
        """From the first frame's start to the last frame's end (0.0 when the timestamps say nothing)."""
        stamps = [(pts, duration) for pts, duration in self.packets if abs(pts) < 1 << 62]
        if not stamps or self.time_base <= 0:
            return 0.0
        start = min(pts for pts, _ in stamps)
        if all(duration > 0 for _, duration in stamps):
            ticks = max(pts + duration for pts, duration in stamps) - start
        elif len(stamps) > 1:  # a muxer may leave the last frame without a duration: extrapolate
            ticks = (max(pts for pts, _ in stamps) - start) * len(stamps) / (len(stamps) - 1)
        else:
            return 0.0
        return float(ticks * self.time_base) if ticks > 0 else 0.0

    def fps(self) -> float:
        seconds = self.seconds()
        measured = len(self.packets) / seconds if seconds > 0 else 0.0
        if measured <= 0:
            return self.banner_fps
        candidates = _banner_candidates(self.banner_fps)
        best = min(candidates, key=lambda rate: abs(rate - measured), default=0.0)
        return best if best and abs(best - measured) <= _SNAP_TOLERANCE * measured else measured

    def info(self, frames: int, *, comment: str, fallback_seconds: float = 0.0) -> VideoInfo:
        fps = self.fps()
        return VideoInfo(frames=frames, fps=fps, width=self.width, height=self.height, codec=self.codec,
                         duration=frames / fps if fps > 0 else fallback_seconds, comment=comment)


def _banner_candidates(shown: float) -> list[float]:
    """The exact rate the banner's text stands for: a whole number as it is; "29.97" (rounded to two
    decimals) as the NTSC rate n*1000/1001 it rounds when there is one, else as printed."""
    if shown <= 0:
        return []
    ntsc = round(shown * 1.001) * 1000 / 1001
    if shown != round(shown) and abs(ntsc - shown) < 0.006:
        return [ntsc]
    return [shown]


def _packet_listing(path: Path) -> _Listing:
    if not path.is_file() or path.stat().st_size == 0:
        raise VideoProbeError("The video file is empty or missing.")
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy",
         "-f", "framecrc", "-"],
        capture_output=True, text=True, errors="replace", timeout=120,
    )
    stream = _STREAM_LINE.search(result.stderr)
    base = _TIME_BASE.search(result.stdout)
    if stream is None:
        raise VideoProbeError("The file has no video stream that ffmpeg can read.")
    if result.returncode != 0 or base is None:
        log.info("reading the packets of %s failed: %s", path, result.stderr[-2000:])
        raise VideoProbeError(_DAMAGED)
    packets = []
    for line in result.stdout.splitlines():
        fields = line.split(",")
        if line.startswith("#") or len(fields) < 5:
            continue
        try:
            packets.append((int(fields[2]), int(fields[3])))
        except ValueError:
            continue
    shown = _BANNER_FPS.search(stream.group(0))
    banner = float(shown.group(1)) * (1000 if shown.group(2) else 1) if shown else 0.0
    return _Listing(stream.group(1), int(stream.group(2)), int(stream.group(3)), tuple(packets),
                    Fraction(int(base.group(1)), int(base.group(2))) if int(base.group(2)) else Fraction(0),
                    banner)

"""Segment previews: a small H.264 MP4 of each finished motion segment, to watch while the job still runs.

The motion stage calls ``make_preview`` on the worker thread right after a segment's folder is complete and
before it reports "segment k/n done", so the preview exists by the time the Live job page hears of the
segment; the page lists them with ``finished_previews``. A preview lives beside its segment's frames in the
job's work folder (``segments/segment_NNN/preview_of_TTT.mp4``: segment NNN + 1 of TTT), goes with that folder,
is written under a temporary name and renamed (a reader sees the whole file or none), and is made once (one
already there, e.g. after a resume, is kept). ffmpeg gets an argument list and runs in the segment's folder:
no shell, no user text. A preview that cannot be made is logged and left out; it never fails the job.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backend.media.video_io import ffmpeg_exe

log = logging.getLogger(__name__)

MAX_WIDTH = 480  # px: enough to judge the motion, small and quick to encode (a second or less per segment)
CRF = 28
ENCODE_TIMEOUT_S = 120
PREVIEW_NAME = re.compile(r"preview_of_(\d{3})\.mp4")
PARTIAL = ".preview.partial.mp4"
# Even width at most MAX_WIDTH, height in proportion and even (yuv420p needs both even).
_SCALE = f"scale=w='trunc(min(iw,{MAX_WIDTH})/2)*2':h=-2"


@dataclass(frozen=True)
class SegmentPreview:
    number: int  # 1-based, as shown: "Segment 1/3"
    total: int  # segments in the job's motion plan
    path: Path


def preview_path(folder: Path, total: int) -> Path:
    return folder / f"preview_of_{total:03d}.mp4"


def make_preview(folder: Path, fps: float, total: int) -> Path | None:
    """The preview of the finished segment in ``folder`` (made now unless it exists); None if it cannot be made."""
    target = preview_path(folder, total)
    if target.is_file():
        return target
    frames = sorted(p.name for p in folder.glob("*.png"))
    if not frames or frames != [f"{i:06d}.png" for i in range(len(frames))]:
        log.warning("no preview for %s: its frames are not numbered 000000.png on", folder)
        return None
    partial = folder / PARTIAL
    try:
        argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-framerate", f"{fps:g}",
                "-start_number", "0", "-i", "%06d.png", "-vf", _SCALE, "-c:v", "libx264", "-preset", "veryfast",
                "-crf", str(CRF), "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", PARTIAL]
        done = subprocess.run(argv, cwd=folder, capture_output=True, timeout=ENCODE_TIMEOUT_S, check=False)
        if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
            log.warning("no preview for %s: ffmpeg exit status %d %s", folder, done.returncode, said)
            partial.unlink(missing_ok=True)
            return None
        os.replace(partial, target)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:  # no ffmpeg, a timeout, a full disk
        log.warning("no preview for %s: %s", folder, exc)
        partial.unlink(missing_ok=True)
        return None
    return target


def finished_previews(workdir: Path) -> list[SegmentPreview]:
    """The previews made so far in a job's work folder, in segment order (a segment still being written has none)."""
    found = []
    for folder in sorted((workdir / "segments").glob("segment_[0-9][0-9][0-9]")):
        for path in sorted(folder.glob("preview_of_[0-9][0-9][0-9].mp4")):
            match = PREVIEW_NAME.fullmatch(path.name)
            if match and path.is_file():
                found.append(SegmentPreview(int(folder.name[-3:]) + 1, int(match.group(1)), path))
                break
    return found

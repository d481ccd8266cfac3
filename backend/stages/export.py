"""Running ffmpeg on streamed frames, and verified, atomic export.

One ffmpeg process per output: raw RGB frames go in on stdin one at a time (never the whole clip
in memory), ffmpeg's errors go to a log file (no pipe to fill up and deadlock), and its progress
to a small key=value file we poll for "frames encoded". Every output is checked afterwards
(imageio-ffmpeg's ``close()`` ignores ffmpeg's exit status, so nothing here trusts an exit code
alone) and only then moved out of the work folder.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from backend.errors import DiskFull, EncodeFailed, VerifyFailed, VideoProbeError
from backend.media.video_io import ffmpeg_exe, probe_video_fast

log = logging.getLogger(__name__)

X264_PRESET = "medium"
NVENC_PRESET = "p5"
REPORT_INTERVAL_S = 0.25
STOP_TIMEOUT_S = 5.0
_PIPE_BYTES = 1 << 20  # a bigger pipe means fewer wake-ups per 1080p frame
_METADATA_KEY = re.compile(r"^[a-z_]{1,32}$")
_LOG_PREFIX = re.compile(r"^(\[[^\]]*@ 0x[0-9a-f]+\]\s*)+")

Progress = Callable[[int], None]  # frames done so far


@dataclass(frozen=True)
class OutputFormat:
    key: str  # recorded as FinishResult.format
    label: str  # for people
    suffix: str  # "" = a folder of frames
    codec: str  # what the verification must find
    encoder: str  # ffmpeg encoder name
    tail: str  # filtergraph.TAILS key
    container: str  # ffmpeg muxer


H264_X264 = OutputFormat("mp4/h264", "H.264 MP4 (libx264)", ".mp4", "h264", "libx264", "yuv420p", "mp4")
H264_NVENC = OutputFormat("mp4/h264", "H.264 MP4 (h264_nvenc)", ".mp4", "h264", "h264_nvenc", "yuv420p", "mp4")
MPEG4 = OutputFormat("mp4/mpeg4", "MPEG-4 Part 2 MP4", ".mp4", "mpeg4", "mpeg4", "yuv420p", "mp4")
GIF = OutputFormat("gif", "GIF", ".gif", "gif", "gif", "gif", "gif")
PNG_FRAMES = OutputFormat("png-frames", "PNG frames", "", "png", "png", "rgb24", "image2")


def fallback_chain(encoder: str) -> list[OutputFormat]:
    """H.264 (NVENC first if chosen) -> other MP4 -> GIF -> PNG frames."""
    first = [H264_NVENC, H264_X264] if encoder == "h264_nvenc" else [H264_X264]
    return first + [MPEG4, GIF, PNG_FRAMES]


# --- encoder choice ----------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def cuda_gpu_present() -> bool:
    """Cheap NVML check (no torch import); False without a driver or the nvidia-ml-py package."""
    try:
        import pynvml
    except ImportError:
        return False
    try:
        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount() > 0
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return False


@functools.cache
def ffmpeg_has_encoder(name: str) -> bool:
    listing = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-encoders"],
                             capture_output=True, text=True, errors="replace", timeout=30).stdout
    return any(line.split()[1:2] == [name] for line in listing.splitlines())


def choose_encoder(requested: str) -> tuple[str, str | None]:
    """(encoder, note for the record) for the user's choice; "auto" takes NVENC only where it can work."""
    if requested != "auto":
        return requested, None
    if not cuda_gpu_present():
        return "libx264", "encoder:auto -> libx264 (no CUDA GPU found)"
    if not ffmpeg_has_encoder("h264_nvenc"):
        return "libx264", "encoder:auto -> libx264 (this ffmpeg has no h264_nvenc)"
    problem = nvenc_problem()
    if problem:
        return "libx264", f"encoder:auto -> libx264 (h264_nvenc does not start here: {problem})"
    return "h264_nvenc", "encoder:auto -> h264_nvenc (CUDA GPU found)"


@functools.lru_cache(maxsize=1)
def nvenc_problem() -> str | None:
    """None if h264_nvenc encodes a test frame, else ffmpeg's reason.

    A GPU is not enough: some have no NVENC unit (H100, A100) and old drivers refuse the SDK the
    bundled ffmpeg was built with. One tiny encode per process saves every job a failed attempt.
    """
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                             "color=size=256x256:duration=0.1", "-c:v", "h264_nvenc", "-f", "null", "-"],
                            capture_output=True, text=True, errors="replace", timeout=60)
    return None if result.returncode == 0 else ffmpeg_message(result.stderr, result.returncode)


def describe_encode(fmt: OutputFormat, crf: int) -> str:
    """The encode step as recorded, e.g. "encode:mp4/h264 libx264 crf 18 preset medium"."""
    settings = " ".join(o[1:] if o.startswith("-") else o for o in _encoder_options(fmt.encoder, crf))
    return f"encode:{fmt.key} {fmt.encoder} {settings}".rstrip()


# --- argument lists ----------------------------------------------------------------------

def input_args(width: int, height: int, rate: str) -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", rate, "-i", "pipe:0"]


def output_args(fmt: OutputFormat, *, crf: int, metadata: dict[str, str], fps: int) -> list[str]:
    """Encoder and container options (everything after -vf except the output name).

    Constant frame rate at ``fps``: the graph already made exactly one frame per tick, and with
    "passthrough" the MP4 muxer leaves the last frame without a duration, so a 25 fps file reads as
    25.51 fps (and fails verification) while 24 and 30 happen to round right.
    """
    args = ["-c:v", fmt.encoder, *_encoder_options(fmt.encoder, crf)]
    if fmt.container == "mp4":
        args += ["-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709",
                 "-color_trc", "bt709", "-color_range", "tv", "-movflags", "+faststart"]
        args += metadata_args(metadata)
    elif fmt.container == "gif":
        args += ["-loop", "0"]
    args += ["-fps_mode", "cfr", "-r", str(fps), "-f", fmt.container]
    return args


def _encoder_options(encoder: str, crf: int) -> list[str]:
    if encoder == "libx264":
        return ["-preset", X264_PRESET, "-crf", str(crf)]
    if encoder == "h264_nvenc":  # constant-quality VBR is NVENC's counterpart of CRF (0 means "auto")
        return ["-preset", NVENC_PRESET, "-tune", "hq", "-rc", "vbr", "-cq", str(max(1, crf)), "-b:v", "0"]
    if encoder == "mpeg4":
        return ["-q:v", "2"]
    if encoder == "png":
        return ["-compression_level", "3"]
    return []


def metadata_args(metadata: dict[str, str]) -> list[str]:
    """-metadata key=value pairs; each value is one argv element, never seen by a shell."""
    args = []
    for key, value in metadata.items():
        if not _METADATA_KEY.match(key):
            log.warning("skipping metadata key %r (not a plain lowercase name)", key)
            continue
        args += ["-metadata", f"{key}={str(value).replace(chr(0), '')}"]  # argv cannot hold NUL
    return args


# --- running ffmpeg ----------------------------------------------------------------------

def run_ffmpeg(args: list[str], frames: Iterable[np.ndarray], *, shape: tuple[int, int, int], cwd: Path,
               name: str, on_progress: Progress, check_cancelled: Callable[[], None]) -> list[str]:
    """Run ``ffmpeg <args>`` in ``cwd`` feeding ``frames`` to stdin; return the exact argv used.

    ``args`` must read pipe:0 as raw RGB of ``shape``. ffmpeg may stop reading early (the graph's
    trim has all it needs): that is not an error, its exit status decides. Any exception here,
    cancel included, kills ffmpeg and waits for it, so no process outlives the call.
    """
    log_path, progress_path = cwd / f"{name}.log", cwd / f"{name}.progress"
    progress_path.unlink(missing_ok=True)
    argv = [args[0], "-progress", progress_path.name, "-stats_period", str(REPORT_INTERVAL_S), *args[1:]]
    with open(log_path, "wb") as errors:
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        _grow_pipe(proc)
        watcher = _ProgressWatcher(progress_path, on_progress)
        _feed(proc, frames, shape, watcher, check_cancelled)
        while True:
            try:
                code = proc.wait(timeout=REPORT_INTERVAL_S)
                break
            except subprocess.TimeoutExpired:
                check_cancelled()
                watcher.poll()
        watcher.poll(force=True)
    finally:
        _stop(proc)
        progress_path.unlink(missing_ok=True)
    if code != 0:
        text = log_path.read_text(errors="replace")
        if "No space left on device" in text:  # no other format would fit either
            raise DiskFull(f"writing the video: {ffmpeg_message(text, code)}")
        raise EncodeFailed(ffmpeg_message(text, code))
    return argv


def _feed(proc: subprocess.Popen, frames: Iterable[np.ndarray], shape: tuple[int, int, int],
          watcher: _ProgressWatcher, check_cancelled: Callable[[], None]) -> None:
    stdin = proc.stdin
    assert stdin is not None
    frames = iter(frames)
    try:
        for index, frame in enumerate(frames):
            check_cancelled()
            if frame.shape != shape or frame.dtype != np.uint8:
                raise ValueError(f"frame {index} is {frame.dtype} {frame.shape}; expected uint8 {shape}")
            stdin.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
            watcher.poll()
        stdin.close()
    except BrokenPipeError:
        log.debug("ffmpeg stopped reading input; its exit status decides")
        _close_quietly(stdin)
    finally:
        close = getattr(frames, "close", None)  # a generator may hold a decoder process or open files
        if close is not None:
            close()


def _stop(proc: subprocess.Popen) -> None:
    """End ``proc`` if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()  # a cancelled or failed run's output is thrown away, so no graceful trailer needed
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("ffmpeg (pid %d) did not exit after SIGKILL", proc.pid)
    if proc.stdin is not None:
        _close_quietly(proc.stdin)


def _close_quietly(stream) -> None:
    try:
        stream.close()
    except BrokenPipeError:
        pass


def _grow_pipe(proc: subprocess.Popen) -> None:
    try:
        import fcntl

        fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, AttributeError, OSError) as exc:  # not Linux, or above the system's pipe-max-size
        log.debug("pipe size left as is: %s", exc)


class _ProgressWatcher:
    """Reads the last ``frame=N`` from ffmpeg's -progress file, at most every REPORT_INTERVAL_S."""

    _FRAME = re.compile(rb"frame=(\d+)")

    def __init__(self, path: Path, on_progress: Progress) -> None:
        self.path, self.on_progress = path, on_progress
        self.last_check, self.last_frames = 0.0, -1

    def poll(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_check < REPORT_INTERVAL_S:
            return
        self.last_check = now
        try:
            with open(self.path, "rb") as handle:
                handle.seek(max(0, self.path.stat().st_size - 512))
                found = self._FRAME.findall(handle.read())
        except OSError:  # not written yet
            return
        if found and int(found[-1]) != self.last_frames:
            self.last_frames = int(found[-1])
            self.on_progress(self.last_frames)


def ffmpeg_message(text: str, code: int | None = None, limit: int = 400) -> str:
    """ffmpeg's first distinct error lines, without the "[module @ 0x..]" prefixes."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = _LOG_PREFIX.sub("", raw).strip()
        if line and line not in lines:
            lines.append(line)
        if len(lines) == 3:
            break
    message = " / ".join(lines) or (f"ffmpeg exited with status {code}" if code is not None else "no message")
    return message if len(message) <= limit else message[: limit - 1] + "…"


# --- verification and publishing ---------------------------------------------------------

@dataclass(frozen=True)
class Verified:
    codec: str
    frames: int
    fps: float
    width: int
    height: int


def verify_output(path: Path, fmt: OutputFormat, *, width: int, height: int, frames: int, fps: int) -> Verified:
    """Check frame count, size and codec (and frame rate for MP4); VerifyFailed says what is off."""
    if fmt.container == "image2":
        found = _verify_frames_folder(path, width, height)
    else:
        try:
            info = probe_video_fast(path)
        except VideoProbeError as exc:
            raise VerifyFailed(f"the written file cannot be read back ({exc})") from exc
        found = Verified(info.codec, info.frames, info.fps, info.width, info.height)
        if fmt.container == "mp4" and abs(info.fps - fps) > 0.01:
            raise VerifyFailed(f"frame rate is {info.fps:g}, expected {fps}")
    problems = []
    if found.codec != fmt.codec:
        problems.append(f"codec is {found.codec}, expected {fmt.codec}")
    if (found.width, found.height) != (width, height):
        problems.append(f"size is {found.width}x{found.height}, expected {width}x{height}")
    if found.frames != frames:
        problems.append(f"{found.frames} frames, expected {frames}")
    if problems:
        raise VerifyFailed("; ".join(problems))
    return found if fmt.container != "image2" else Verified("png", found.frames, float(fps), width, height)


def _verify_frames_folder(folder: Path, width: int, height: int) -> Verified:
    files = sorted(folder.glob("*.png"))
    if not files:
        raise VerifyFailed("no PNG frames were written")
    sizes = set()
    for path in (files[0], files[-1]):
        try:
            with Image.open(path) as image:
                sizes.add(image.size)
                image.verify()
        except (OSError, SyntaxError) as exc:  # PIL reports broken PNGs as SyntaxError
            raise VerifyFailed(f"{path.name} is not a readable PNG ({exc})") from exc
    if len(sizes) > 1:
        raise VerifyFailed(f"the frames have different sizes: {sorted(sizes)}")
    (found_w, found_h), = sizes
    return Verified("png", len(files), 0.0, found_w, found_h)


def publish(temp: Path, final: Path) -> Path:
    """Move a verified output into place; readers never see a half-written file.

    Same filesystem: one rename. Across filesystems: copy beside the destination under a hidden
    name, then rename. A folder never replaces an existing one: it gets a free name instead.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    if temp.is_dir():
        final = _free_name(final)
    try:
        os.replace(temp, final)
        return final
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    partial = final.with_name(f".{final.name}.partial-{os.getpid()}")
    try:
        if temp.is_dir():
            shutil.copytree(temp, partial)
        else:
            shutil.copyfile(temp, partial)
        os.replace(partial, final)
    except BaseException:
        remove_path(partial)
        raise
    remove_path(temp)
    return final


def _free_name(path: Path) -> Path:
    candidate, number = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}-{number}")
        number += 1
    return candidate


def remove_path(path: Path, *, inside: Path | None = None) -> None:
    """Delete a file or folder we wrote; never anything but a plain file/folder (think /dev/full)."""
    if inside is not None and not path.resolve().is_relative_to(inside.resolve()):
        return
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)

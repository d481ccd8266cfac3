"""`python -m backend finish INPUT --out OUT.mp4 ...`: the finishing chain applied to any video.

Standalone, only the steps asked for are applied (no grade or sharpening unless given); the
output is the same verified, atomically written file the studio delivers. Until the subcommand is
wired into ``python -m backend`` it also runs as ``python -m backend.cli.finish finish ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np

from backend.cli.common import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_FAILED
from backend.errors import FinishError, LutError, ModelNotAvailable, SpecError, VideoProbeError
from backend.media.video_io import iter_frames, probe_video_fast
from backend.paths import runtime_paths
from backend.record import FinishRecord
from backend.spec import (
    ASPECT_POLICIES,
    ENCODERS,
    GRADES,
    INTERPOLATIONS,
    MODEL_SETS,
    STABILIZERS,
    UPSCALERS,
    FinishOptions,
)
from backend.stages.finish import FinishTarget, finish

log = logging.getLogger(__name__)


class UsageError(ValueError):
    """Arguments that cannot work together; the message is for the user."""


class VideoFileSource:
    """A video file as a re-iterable frame source (each ``frames()`` call decodes from the start)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        info = probe_video_fast(path)
        self.fps, self.count = info.fps, info.frames
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise VideoProbeError("The video does not state a frame rate.")
        frames = iter_frames(path)
        try:  # the decoded size (rotation applied), not the header's
            first = next(frames, None)
        finally:
            frames.close()
        if first is None:
            raise VideoProbeError("The video has no frames that ffmpeg can decode.")
        self.height, self.width = first.shape[:2]

    def frames(self) -> Iterator[np.ndarray]:
        return iter_frames(self.path)

    def __len__(self) -> int:
        return self.count


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finish", help="interpolate, upscale, grade, sharpen, stabilise and encode a video file",
        description="Apply the studio's finishing chain to a video and write a verified H.264 MP4 "
                    "(or, if that fails, the next format that works: MPEG-4 MP4, GIF, PNG frames).")
    parser.add_argument("input", type=Path, help="video file to finish")
    parser.add_argument("--out", type=Path, required=True, help="output file, ending in .mp4")
    parser.add_argument("--fps", type=int, help="output frame rate (default: the input's, rounded)")
    parser.add_argument("--size", default="1920x1080", help="output size WxH (default 1920x1080)")
    parser.add_argument("--frames", type=int, help="exact output frame count (default: input duration x fps)")
    parser.add_argument("--interpolation", choices=INTERPOLATIONS, default="flow",
                        help="frame-rate conversion: flow = optical flow, no download (default); rife = RIFE "
                             "model; minterpolate, blend = ffmpeg's; none = repeat/drop frames")
    parser.add_argument("--upscale", choices=UPSCALERS, default="lanczos",
                        help="lanczos (default) or model: a Real-ESRGAN-family upscaler first, then lanczos "
                             "to the exact size")
    parser.add_argument("--deflicker", type=int, default=0, metavar="FRAMES",
                        help="even out brightness flicker over this many frames (2..129; default 0 = off)")
    parser.add_argument("--models", choices=MODEL_SETS, default="default",
                        help="where --upscale model and --interpolation rife get weights: default = the "
                             "downloaded models, tiny = random-weight test models (output is noise)")
    parser.add_argument("--aspect", choices=ASPECT_POLICIES, default="fit",
                        help="fit = pad with black bars, fill = crop (default fit); never stretched")
    parser.add_argument("--grade", choices=GRADES, default="none", help="colour grade preset (default none)")
    parser.add_argument("--lut", help=".cube 3D LUT applied after the grade")
    parser.add_argument("--sharpen", type=float, default=0.0, help="unsharp amount 0..3 (default 0 = off)")
    parser.add_argument("--stabilize", nargs="?", const="vidstab", default="off", choices=STABILIZERS,
                        help="stabilise: vidstab (two-pass, the default when given alone) or deshake")
    parser.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")
    parser.add_argument("--encoder", choices=ENCODERS, default="libx264",
                        help="libx264 (default), h264_nvenc (GPU, faster) or auto")
    parser.add_argument("--title", help="title embedded in the file (default: the output name)")
    parser.add_argument("--comment", help="comment embedded in the file (default: the settings as JSON)")
    parser.add_argument("-y", "--overwrite", action="store_true",
                        help="replace OUT (or the .gif a fallback writes) if it exists; without it nothing that "
                             "exists is replaced (a frames folder is never replaced: it gets a free name)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 on success (prints the output path or JSON); otherwise a one-line error on stderr."""
    try:
        result = _finish(args)
    except (UsageError, SpecError, LutError, VideoProbeError, ModelNotAvailable) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except FinishError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        return _fail(f"{exc.strerror or exc} ({exc.filename or 'file system'})", EXIT_FAILED)
    except KeyboardInterrupt:  # ffmpeg has been stopped by then; nothing was published
        return _fail("interrupted; no output written", EXIT_CANCELLED)
    if args.json:
        print(json.dumps({"input": str(args.input), **result.to_dict()}, indent=2))
        return 0
    for reason in result.fallbacks:  # say so when the file is not the H.264 MP4 asked for
        print(f"note: {' '.join(reason.split())}", file=sys.stderr)
    print(result.file)
    return 0


def _finish(args: argparse.Namespace) -> FinishRecord:
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise UsageError(f"--out must end in .mp4 (got {out.name!r}).")
    if not args.overwrite:
        _refuse_existing(out)
    if not Path(args.input).is_file():
        raise UsageError(f"input video {args.input} not found.")
    width, height = _size(args.size)
    options = FinishOptions(interpolation=args.interpolation, aspect=args.aspect, grade=args.grade,
                          lut=args.lut, sharpen=args.sharpen, stabilize=args.stabilize, crf=args.crf,
                          encoder=args.encoder, upscale=args.upscale, deflicker=args.deflicker,
                          colour_match="off")  # one file: no segments to match
    options.validate()
    source = VideoFileSource(Path(args.input))
    fps = args.fps if args.fps is not None else max(1, round(source.fps))
    if not 1 <= fps <= 240:
        said = f"got {fps}" if args.fps is not None else f"the input runs at {source.fps:g} fps; pass --fps"
        raise UsageError(f"--fps must be between 1 and 240 ({said}).")
    frames = args.frames if args.frames is not None else max(1, round(len(source) / source.fps * fps))
    if frames < 1:
        raise UsageError(f"--frames must be positive (got {frames}).")
    target = FinishTarget(width, height, fps, frames)
    metadata = {
        "title": args.title if args.title is not None else out.stem,
        "comment": args.comment if args.comment is not None else json.dumps(
            {"finish": asdict(options), "target": asdict(target), "source": Path(args.input).name}),
    }
    # finish() publishes with a plain rename, which replaces what is there; so it publishes into a
    # private folder beside OUT (same disk), and _deliver moves the result out without replacing
    # anything that appeared meanwhile (unless --overwrite).
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.finishing-", dir=out.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="finish-", dir=_temp_root()) as workdir:
            result = finish(source, target=target, options=options, workdir=Path(workdir),
                            output_path=staging / out.name, metadata=metadata, model_set=args.models,
                            report=_console_progress() if not args.json else None)
        result.path = str(_deliver(result.file, out.parent, overwrite=args.overwrite))
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _destinations(out: Path) -> list[Path]:
    """Every name finish() may deliver for OUT: the MP4 (suffix normalised), the GIF, the frames folder."""
    return [out, out.with_suffix(".mp4"), out.with_suffix(".gif"), out.with_name(f"{out.stem}_frames")]


def _refuse_existing(out: Path) -> None:
    """UsageError if anything finish() could write already exists, compared without case (h.MP4 vs h.mp4)."""
    wanted = {path.name.casefold() for path in _destinations(out)}
    try:
        clash = sorted(entry.name for entry in out.parent.iterdir() if entry.name.casefold() in wanted)
    except FileNotFoundError:
        clash = []
    clash += [path.name for path in _destinations(out) if path.exists() and path.name not in clash]
    if clash:
        found = out.parent / clash[0]
        allow = "write beside it under a free name" if found.is_dir() else "replace it"
        raise UsageError(f"{found} already exists (finishing {out.name} may write it); pass --overwrite to "
                         f"{allow}, or choose another --out.")


def _deliver(made: Path, folder: Path, *, overwrite: bool) -> Path:
    """Move ``made`` (in the staging folder, same disk) into ``folder``; never replace without ``overwrite``.

    A file is hard-linked into place, which fails if the name exists (in any case, on a case-insensitive
    disk); a frames folder gets a free name rather than replacing one, as ``export.publish`` does.
    """
    final = folder / made.name
    if made.is_dir():
        number = 1
        while final.exists():
            final, number = folder / f"{made.name}-{number}", number + 1
        os.rename(made, final)
        return final
    if overwrite:
        os.replace(made, final)
        return final
    try:
        os.link(made, final)
    except FileExistsError:
        raise FinishError(f"{final} appeared while finishing; it was left untouched and nothing was written. "
                          f"Pass --overwrite to replace it, or choose another --out.") from None
    except OSError:  # a file system without hard links: check, then rename (a far smaller window)
        if final.exists() or any(e.name.casefold() == final.name.casefold() for e in folder.iterdir()):
            raise FinishError(f"{final} appeared while finishing; it was left untouched and nothing was "
                              f"written. Pass --overwrite to replace it, or choose another --out.") from None
        os.rename(made, final)
    return final  # the staging folder's own link goes with the folder


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise UsageError(f"--size must look like 1920x1080 (got {text!r}).")
    width, height = int(parts[0]), int(parts[1])
    if not (16 <= width <= 7680 and 16 <= height <= 4320):
        raise UsageError(f"--size {width}x{height} is out of range (16x16 .. 7680x4320).")
    return width, height


def _temp_root() -> Path | None:
    """The studio's temp/ folder when it exists (same disk as outputs/), else the system's."""
    temp = runtime_paths().temp
    return temp if temp.is_dir() else None


def _console_progress():
    if not sys.stderr.isatty():
        return None

    def report(fraction: float, message: str, step: int | None, total: int | None) -> None:
        sys.stderr.write(f"\r{fraction:6.1%}  {message[:70]:<70}")
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return report


def _fail(message: str, code: int) -> int:
    line = " ".join(str(message).split())  # one line, whatever ffmpeg's text contained
    print(f"error: {line}", file=sys.stderr)
    return code

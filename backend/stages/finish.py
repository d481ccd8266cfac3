"""Finishing: the assembled clip becomes the delivered, verified file in one ffmpeg filter graph.

Steps (each optional, each recorded): model upscale and flow/RIFE frame-rate conversion in Python
(``finish_frames.py``), then in one graph stabilise, grade + LUT, deflicker, minterpolate/blend,
exact frame count, lanczos scale with an explicit aspect policy, sharpen, encode. The graph itself is
built in ``filtergraph.py``; running ffmpeg, verifying and publishing in ``export.py``. Here:

  1. validate inputs (sizes even, LUT readable) with errors a user can act on; wrap the source in
     what Python does to the frames (streamed: the graph reads them as they are made)
  2. vidstab pass 1, if asked: measure the shake (the source is streamed a first time)
  3. for each format of the fallback chain H.264 -> MPEG-4 MP4 -> GIF -> PNG frames:
     stream the source through the graph into the job's work folder, verify, move into place
  4. record what was produced, how, and why any format before it failed
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

import numpy as np

from backend.errors import EncodeFailed, FinishError, VerifyFailed
from backend.media.clip import VideoFileClip
from backend.media.luts import load_cube, write_cube
from backend.media.video_io import ffmpeg_exe
from backend.record import FinishRecord
from backend.spec import FinishOptions
from backend.stages import export, filtergraph, finish_frames
from backend.stages.filtergraph import GraphPlan, OutputShape, SourceShape

if TYPE_CHECKING:  # pragma: no cover
    from backend.stages.context import StageContext

log = logging.getLogger(__name__)

DETECT_SHARE = 0.2  # share of the progress bar for vidstab's analysis pass
PREPARED_FILE = "prepared_frames.mkv"  # frames made in Python, kept by the vidstab analysis pass

Report = Callable[[float, str, "int | None", "int | None"], None]


class FrameSource(Protocol):
    fps: float
    width: int
    height: int

    def frames(self) -> Iterator[np.ndarray]: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class FinishTarget:
    width: int
    height: int
    fps: int
    total_frames: int  # the output has exactly this many frames at ``fps``


@dataclass(frozen=True)
class FinishInputs:
    clip: FrameSource
    target: FinishTarget
    output_path: Path  # where the video goes (its suffix follows the format that survives)
    metadata: dict[str, str]  # container tags: title, comment
    options: FinishOptions | None = None  # instead of the spec's (extend keeps the source untouched)


def run(ctx: StageContext, inputs: FinishInputs) -> FinishRecord:
    """Stage form: options from the job spec, progress and cancel through ``ctx``."""
    return finish(
        inputs.clip,
        target=inputs.target,
        options=inputs.options or ctx.spec.finish,
        workdir=ctx.workdir / "finish",
        output_path=inputs.output_path,
        metadata=inputs.metadata,
        report=lambda fraction, message, step, total: ctx.report(fraction, message, step=step, total=total),
        check_cancelled=ctx.check_cancelled,
        model_set=ctx.spec.model_set,
    )


def finish(source: FrameSource, *, target: FinishTarget, options: FinishOptions, workdir: Path, output_path: Path,
           metadata: dict[str, str], report: Report | None = None,
           check_cancelled: Callable[[], None] | None = None, models_root: Path | None = None,
           model_set: str = "default") -> FinishRecord:
    """Apply the finishing chain to ``source`` and deliver a verified file at ``output_path``.

    The suffix of the delivered file follows the format that survived (``.gif`` after a fallback,
    a ``<stem>_frames`` folder for PNG frames). Raises SpecError/LutError/ValueError for bad input,
    FinishError when no format could be written, ModelNotAvailable when an upscaler or RIFE model is
    asked for and not downloaded, and whatever ``check_cancelled`` raises on cancel; on any error
    nothing is left at the destination. ``models_root``/``model_set``: where those models come from.
    """
    started = time.monotonic()
    options.validate()
    target, notes = _normalise(target)
    _source_shape(source)
    prepared = finish_frames.prepare(source, target, options, models_root=models_root, model_set=model_set)
    source = prepared.source
    notes += prepared.steps
    shape = _source_shape(source)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    progress = _Progress(report, target.total_frames)
    cancelled = check_cancelled or (lambda: None)

    lut_file = _stage_lut(options.lut, workdir)
    transforms = None
    if options.stabilize == "vidstab":
        # Frames made in Python (flow, RIFE, a model upscale) are kept losslessly by the analysis pass and read
        # back by the encode pass, rather than made a second time.
        made = workdir / PREPARED_FILE if isinstance(source, finish_frames.PreparedSource) else None
        transforms = _detect_shake(source, shape, workdir, progress, cancelled, keep=made)
        if made is not None:
            source = VideoFileClip(made, source.fps, source.width, source.height, len(source))
    out = OutputShape(target.width, target.height, target.fps, target.total_frames)
    plan = filtergraph.build_graph(shape, out, options, lut_file=lut_file, transforms_file=transforms)
    encoder, encoder_note = export.choose_encoder(options.encoder)
    if encoder_note:
        notes.append(encoder_note)
    log.info("finishing %d frames -> %dx%d@%d with %s: %s", len(source), out.width, out.height, out.fps, encoder,
             plan.graph())

    fallbacks: list[str] = []
    for index, fmt in enumerate(export.fallback_chain(encoder), start=1):
        try:
            result = _attempt(index, fmt, source, shape, plan, target, options, workdir, output_path, metadata,
                              progress, cancelled)
        except (EncodeFailed, VerifyFailed) as exc:
            fallbacks.append(f"{fmt.label} failed: {exc}")
            log.warning("finish: %s failed: %s", fmt.label, exc)
            continue
        result.fallbacks = fallbacks
        graph_steps = [s for s in plan.steps if not (prepared.interpolation in filtergraph.PYTHON_METHODS
                                                     and s.startswith("fps:"))]
        result.steps = notes + graph_steps + [export.describe_encode(fmt, options.crf)] + result.steps
        result.interpolation, result.upscaler = prepared.interpolation, prepared.upscaler
        result.upscale_tile, result.upscale_overlap = prepared.upscale_tile, prepared.upscale_overlap
        result.deflicker = options.deflicker or None
        result.seconds = round(time.monotonic() - started, 3)
        progress.done(f"wrote {result.format}: {result.file.name}")
        if fallbacks:
            log.warning("finish: delivered %s after %d failed format(s)", result.format, len(fallbacks))
        return result
    raise FinishError("No output format could be written. " + " ".join(fallbacks))


def _attempt(index: int, fmt: export.OutputFormat, source: FrameSource, shape: SourceShape, plan: GraphPlan,
             target: FinishTarget, options: FinishOptions, workdir: Path, output_path: Path,
             metadata: dict[str, str], progress: _Progress, cancelled: Callable[[], None]) -> FinishRecord:
    """One format: encode into the work folder, verify, publish. Cleans up after itself on failure."""
    temp = temp_output(workdir, fmt, index)
    export.remove_path(temp, inside=workdir)
    graph = plan.graph(fmt.tail)
    # Relative to ffmpeg's cwd (the work folder): no '%' or odd characters of the user's path
    # reach image2's pattern expansion, and the recorded arguments stay short.
    destination_arg = temp.name if temp.parent == workdir else str(temp)
    if fmt.container == "image2":
        temp.mkdir(parents=True)
        destination_arg += "/%06d.png"
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-y",
            *export.input_args(shape.width, shape.height, filtergraph.rate_text(shape.fps)),
            "-vf", graph, *export.output_args(fmt, crf=options.crf, metadata=metadata, fps=target.fps),
            destination_arg]
    progress.begin(f"encoding {fmt.label}")
    try:
        args = export.run_ffmpeg(args, source.frames(), shape=(shape.height, shape.width, 3), cwd=workdir,
                                 name=f"attempt{index}", on_progress=progress.frames,
                                 check_cancelled=cancelled)
        found = export.verify_output(temp, fmt, width=target.width, height=target.height,
                                     frames=target.total_frames, fps=target.fps)
        destination = _destination(output_path, fmt)
        try:
            final = export.publish(temp, destination)
        except OSError as exc:  # a verified file that cannot be moved: no other format would fare better
            raise FinishError(f"Could not move the finished video into {destination.parent}: {exc}") from exc
    except BaseException:
        export.remove_path(temp, inside=workdir)
        raise
    steps = [f"verified:{found.frames} frames {found.width}x{found.height} {found.codec}"]
    return FinishRecord(path=str(final), format=fmt.key, codec=found.codec, frames=found.frames, fps=found.fps,
                        width=found.width, height=found.height, filter_graph=graph, ffmpeg_args=args, steps=steps)


def temp_output(workdir: Path, fmt: export.OutputFormat, index: int) -> Path:
    """Where attempt ``index`` writes (inside the work folder, never in outputs/)."""
    slug = fmt.key.replace("/", "-")
    return workdir / f"attempt{index}-{slug}{fmt.suffix}"


def _destination(output_path: Path, fmt: export.OutputFormat) -> Path:
    output_path = Path(output_path)
    if fmt.container == "image2":
        return output_path.with_name(f"{output_path.stem}_frames")
    return output_path.with_suffix(fmt.suffix)


def _detect_shake(source: FrameSource, shape: SourceShape, workdir: Path, progress: _Progress,
                  cancelled: Callable[[], None], keep: Path | None = None) -> str:
    """vidstab pass 1 over the source; returns the transforms file name (relative to ``workdir``).
    With ``keep``, the frames it read are also written there, losslessly (x264 RGB at qp 0: ~6x cheaper to
    write and read back than FFV1 here at 1080p, and smaller; docs/FINISHING.md)."""
    name = filtergraph.TRANSFORMS_FILE
    (workdir / name).unlink(missing_ok=True)
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-y",
            *export.input_args(shape.width, shape.height, filtergraph.rate_text(shape.fps)),
            "-vf", filtergraph.detect_graph(name), "-f", "null", "-"]
    if keep is not None:
        args += ["-map", "0:v", "-c:v", "libx264rgb", "-preset", "ultrafast", "-qp", "0", str(keep)]
    progress.detecting(len(source))
    try:
        export.run_ffmpeg(args, source.frames(), shape=(shape.height, shape.width, 3), cwd=workdir,
                          name="stabilize-detect", on_progress=progress.frames, check_cancelled=cancelled)
    except EncodeFailed as exc:
        raise FinishError(f"Stabilisation could not analyse the video: {exc}") from exc
    return name


def _stage_lut(lut: str | None, workdir: Path) -> str | None:
    """Validate the user's LUT and put a normalised copy where ffmpeg reads it by a plain name."""
    if not lut:
        return None
    cube = load_cube(Path(lut))  # LutError (a ValueError) with line number and reason
    write_cube(cube, workdir / filtergraph.LUT_FILE)
    return filtergraph.LUT_FILE


def _normalise(target: FinishTarget) -> tuple[FinishTarget, list[str]]:
    """Even output size (H.264 needs it), said out loud rather than done silently."""
    for name in ("width", "height", "fps", "total_frames"):
        value = getattr(target, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"finish target {name} must be a positive whole number; got {value!r}")
    if target.width < 2 or target.height < 2:
        raise ValueError(f"finish target size {target.width}x{target.height} is too small")
    width, height = filtergraph.even_down(target.width), filtergraph.even_down(target.height)
    if (width, height) == (target.width, target.height):
        return target, []
    note = f"size:{target.width}x{target.height} -> {width}x{height} (H.264 needs even sizes)"
    return FinishTarget(width, height, target.fps, target.total_frames), [note]


def _source_shape(source: FrameSource) -> SourceShape:
    count = len(source)
    if count < 1:
        raise ValueError("the clip to finish has no frames")
    if not (isinstance(source.fps, (int, float)) and math.isfinite(source.fps) and source.fps > 0):
        raise ValueError(f"the clip's frame rate must be positive; got {source.fps!r}")
    if source.width < 1 or source.height < 1:
        raise ValueError(f"the clip's size {source.width}x{source.height} is invalid")
    return SourceShape(int(source.width), int(source.height), float(source.fps), count)


class _Progress:
    """Maps frame counts onto the stage's 0..1 bar; a retry continues from where the bar stands."""

    def __init__(self, report: Report | None, total: int) -> None:
        self.report, self.total = report, total
        self.start, self.span, self.fraction = 0.0, 1.0, 0.0
        self.label, self.unit_total = "", total

    def detecting(self, source_frames: int) -> None:
        self.label, self.unit_total = "analysing camera shake", source_frames
        self.start, self.span = 0.0, DETECT_SHARE
        self._send(self.start, self.label, 0, source_frames)

    def begin(self, label: str) -> None:
        self.label, self.unit_total = label, self.total
        self.start, self.span = self.fraction, 1.0 - self.fraction
        self._send(self.start, label, 0, self.total)

    def frames(self, done: int) -> None:
        done = min(done, self.unit_total)
        self._send(self.start + self.span * done / max(1, self.unit_total),
                   f"{self.label}: frame {done}/{self.unit_total}", done, self.unit_total)

    def done(self, message: str) -> None:
        self._send(1.0, message, self.total, self.total)

    def _send(self, fraction: float, message: str, step: int, total: int) -> None:
        self.fraction = max(self.fraction, fraction)  # never backwards, even across a fallback
        if self.report is not None:
            self.report(self.fraction, message, step, total)

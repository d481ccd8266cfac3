"""What finishing does to the frames in Python, before the one ffmpeg graph: model upscaling and
motion-compensated frame-rate conversion (``flow``, ``rife``).

``prepare`` wraps the clip in a ``PreparedSource``: the same frame-source shape, streamed (one source
frame upscaled at a time, two held for interpolation), at the output frame rate when it interpolates,
so the graph then only grades, sizes and encodes. It says what it will do as record fields and steps.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import cv2
import numpy as np

from backend.media.interpolation import FLOW_WIDTH, FlowInterpolator, Interpolator, positions, retime
from backend.spec import FinishOptions

if TYPE_CHECKING:  # pragma: no cover
    from backend.stages.finish import FinishTarget, FrameSource

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    source: "FrameSource"
    steps: list[str] = field(default_factory=list)
    interpolation: str | None = None  # the method that made the frames at the output rate
    upscaler: str | None = None
    upscale_tile: int | None = None
    upscale_overlap: int | None = None


class PreparedSource:
    """``source`` through ``process`` (a frame stream -> frame stream), at ``fps`` with ``count`` frames."""

    def __init__(self, source: "FrameSource", fps: float, count: int, width: int, height: int,
                 process: Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]]) -> None:
        self.source, self.fps, self.count, self.width, self.height = source, fps, count, width, height
        self.process = process

    def frames(self) -> Iterator[np.ndarray]:
        return self.process(iter(self.source.frames()))

    def __len__(self) -> int:
        return self.count


def prepare(source: "FrameSource", target: "FinishTarget", options: FinishOptions, *,
            models_root: Path | None = None, model_set: str = "default") -> Prepared:
    """The source as the graph should see it (model-upscaled and/or interpolated), and what was done."""
    prepared = Prepared(source)
    if options.upscale == "model":
        _upscale(prepared, target, options, models_root, model_set)
    changes_rate = not math.isclose(source.fps, target.fps, rel_tol=0, abs_tol=1e-6)
    if options.interpolation in ("flow", "rife") and changes_rate and len(source) >= 2:
        _interpolate(prepared, target, options, models_root, model_set)
    elif changes_rate and options.interpolation in ("minterpolate", "blend", "none"):
        prepared.interpolation = {"none": "repeat"}.get(options.interpolation, options.interpolation)
    return prepared


def _upscale(prepared: Prepared, target: "FinishTarget", options: FinishOptions, models_root: Path | None,
             model_set: str) -> None:
    current = prepared.source
    # Enough pixels for the output whichever aspect policy (fit needs the smaller ratio, fill the larger).
    need = max(target.width / current.width, target.height / current.height)
    if need <= 1.0:
        prepared.steps.append(f"upscale:model skipped ({current.width}x{current.height} already covers "
                              f"{target.width}x{target.height}); lanczos only")
        return
    from backend.models.registry import finishing_model_for
    from backend.models.upscalers import load_upscaler

    upscaler = load_upscaler(finishing_model_for(model_set, "upscaler"), _models_root(models_root))
    width, height = _even(current.width * min(need, upscaler.scale)), _even(current.height * min(need, upscaler.scale))

    def process(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for frame in frames:
            big = upscaler(frame)
            if big.shape[1] != width or big.shape[0] != height:  # area-average down to what the output needs
                big = cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA)
            yield big

    prepared.source = PreparedSource(current, current.fps, len(current), width, height, process)
    prepared.upscaler, prepared.upscale_tile, prepared.upscale_overlap = (
        upscaler.label, upscaler.tiling.tile, upscaler.tiling.overlap)
    prepared.steps.append(f"upscale:model {upscaler.label} on {upscaler.device} ({upscaler.dtype_name}), tile "
                          f"{upscaler.tiling.tile} overlap {upscaler.tiling.overlap} -> {width}x{height}; "
                          f"lanczos to the exact size in the graph")


def _interpolate(prepared: Prepared, target: "FinishTarget", options: FinishOptions, models_root: Path | None,
                 model_set: str) -> None:
    current = prepared.source
    interpolator: Interpolator
    if options.interpolation == "rife":
        from backend.models.registry import finishing_model_for
        from backend.models.rife import load_rife

        interpolator = load_rife(finishing_model_for(model_set, "rife"), _models_root(models_root),
                                 frame_size=(current.width, current.height))
        how = f"RIFE ({interpolator.label}, {interpolator.device.type})"
    else:
        interpolator = FlowInterpolator()
        flow_w = min(FLOW_WIDTH, current.width)
        how = f"DIS optical flow both ways at {flow_w}px wide, occlusion-aware blend"
    plan = positions(current.fps, target.fps, target.total_frames, len(current))

    def process(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        return retime(frames, plan, interpolator)

    prepared.source = PreparedSource(current, float(target.fps), target.total_frames, current.width,
                                     current.height, process)
    prepared.interpolation = options.interpolation
    made = sum(1 for p in plan if p.t > 0)
    prepared.steps.append(f"fps:{options.interpolation} {current.fps:g}->{target.fps} ({how}; "
                          f"{made} of {len(plan)} frames made)")


def _models_root(models_root: Path | None) -> Path:
    if models_root is not None:
        return models_root
    from backend.paths import runtime_paths

    return runtime_paths().models


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))

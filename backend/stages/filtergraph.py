"""The finishing filter graph, built as plain strings: no processes, no files, easy to test.

Order, and why:
  1. stabilise    on the source frames: vidstab's transforms are indexed by the frames pass 1 saw
  2. grade + LUT  at source size and rate, the cheapest place for per-pixel colour work;
                  deflicker (optional) after it, on the graded brightness
  3. frame rate   minterpolate or blend, still at source size (flow and rife make their frames in
                  Python before the graph: the graph then gets frames at the output rate already)
  4. exact count  clone the last frame to pad, trim the rest
  5. geometry     crop (fill) / lanczos scale / pad (fit); the scale also converts to yuv420p
  6. sharpen      at output size on luma (sharpening before the upscale would magnify halos)
  7. a tail for the container: nothing for MP4, a per-frame palette for GIF, RGB for PNG

Colour: the scale converts to yuv420p with the BT.709 matrix (HD players assume it), and the
graph ends by labelling the frames BT.709. Conversions ffmpeg inserts earlier (RGB -> YUV for eq)
tag the frames with their matrix, and the scale reads that tag, so colours survive unchanged.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from backend.spec import FinishOptions

# Files the graph reads are copied into ffmpeg's working folder under these plain names, so no
# user path ever needs filter-graph escaping.
TRANSFORMS_FILE = "transforms.trf"
LUT_FILE = "grade.cube"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

# Label the frames BT.709 in full (the scale converts with that matrix); without it the encoder
# marks only the matrix and leaves primaries and transfer "unknown" (measured with ffmpeg 9.0.2).
TAG_BT709 = "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"

PYTHON_METHODS = ("flow", "rife")  # frame-rate conversions made in Python before the graph
MIN_MINTERPOLATE_FRAMES = 3  # minterpolate emits no frames at all for shorter inputs (measured)


@dataclass(frozen=True)
class Grade:
    curves: str | None  # per-channel RGB curves: cheap lookup tables for tints and split tones
    eq: str | None  # contrast / saturation / brightness
    description: str


# colorbalance would express the tints more directly but measured ~25x slower than curves here
# (6.3 s vs 0.23 s for 300 frames of 1024x576 on 2 cores), so tints are curves.
GRADES: dict[str, Grade] = {
    "none": Grade(None, None, "no grade"),
    "neutral": Grade(None, "eq=contrast=1.04:saturation=1.04", "a light lift of contrast and colour"),
    "cinematic": Grade(
        "curves=r='0/0 0.25/0.21 0.75/0.79 1/1':g='0/0 0.25/0.24 0.75/0.76 1/1'"
        ":b='0/0 0.25/0.30 0.75/0.70 1/1'",
        "eq=contrast=1.08:saturation=0.88",
        "teal shadows, warm highlights, muted colour, more contrast",
    ),
    "vivid": Grade(None, "eq=contrast=1.08:saturation=1.40", "strong colour and contrast"),
    "warm": Grade("curves=r='0/0 0.5/0.55 1/1':g='0/0 0.5/0.51 1/1':b='0/0 0.5/0.44 1/1'", None,
                  "red up, blue down in the mid-tones"),
    "cool": Grade("curves=r='0/0 0.5/0.45 1/1':b='0/0 0.5/0.56 1/1'", None, "blue up, red down in the mid-tones"),
    "noir": Grade(None, "eq=saturation=0:contrast=1.30", "black and white, high contrast"),
}

# What the container needs at the end of the chain (see module docstring, step 7).
TAILS: dict[str, str] = {
    "yuv420p": "",
    "gif": "split[gif_a][gif_b];[gif_a]palettegen=stats_mode=single[gif_p];[gif_b][gif_p]paletteuse=new=1",
    "rgb24": "format=rgb24",
}


@dataclass(frozen=True)
class SourceShape:
    width: int
    height: int
    fps: float
    frames: int


@dataclass(frozen=True)
class OutputShape:
    width: int
    height: int
    fps: int
    frames: int


@dataclass(frozen=True)
class GraphPlan:
    filters: tuple[str, ...]
    steps: tuple[str, ...]

    def graph(self, tail: str = "yuv420p") -> str:
        """The full -vf string for one container."""
        extra = TAILS[tail]
        return ",".join(self.filters + ((extra,) if extra else ()))


def build_graph(source: SourceShape, out: OutputShape, options: FinishOptions, *,
                lut_file: str | None = None, transforms_file: str | None = None) -> GraphPlan:
    """The finishing chain for ``options``; ``lut_file``/``transforms_file`` are names in ffmpeg's cwd."""
    filters: list[str] = []
    steps: list[str] = []

    def add(new: list[str], step: str | None) -> None:
        filters.extend(new)
        if step:
            steps.append(step)

    add(*stabilise_filters(options.stabilize, source.fps, transforms_file))
    add(*grade_filters(options.grade))
    if lut_file is not None:
        add([f"lut3d=file={_safe(lut_file)}:interp=tetrahedral"], f"lut:{lut_file}")
    add(*deflicker_filters(options.deflicker))
    add(*fps_filters(options.interpolation, source.fps, out.fps, source.frames))
    add(*frame_count_filters(out.frames, out.fps))
    add(*geometry_filters(source.width, source.height, out.width, out.height, options.aspect))
    add(*sharpen_filters(options.sharpen))
    filters += ["setsar=1", TAG_BT709]
    return GraphPlan(tuple(filters), tuple(steps))


def detect_graph(transforms_file: str = TRANSFORMS_FILE) -> str:
    """Pass 1 of vidstab: measure the shake, write the transforms."""
    return f"vidstabdetect=shakiness=6:accuracy=15:result={_safe(transforms_file)}"


def stabilise_filters(mode: str, src_fps: float, transforms_file: str | None) -> tuple[list[str], str | None]:
    if mode == "off":
        return [], None
    if mode == "deshake":
        return ["deshake=rx=32:ry=32:blocksize=16:contrast=20:edge=mirror"], "stabilize:deshake"
    if transforms_file is None:
        raise ValueError("vidstab stabilisation needs the transforms file from the detect pass")
    # Smooth the camera path over about +-1 s, whatever the source frame rate.
    smoothing = max(3, round(src_fps))
    return (
        [f"vidstabtransform=input={_safe(transforms_file)}:smoothing={smoothing}:optzoom=1:interpol=bicubic"],
        f"stabilize:vidstab smoothing {smoothing}",
    )


def grade_filters(name: str) -> tuple[list[str], str | None]:
    grade = GRADES[name]
    filters = [f for f in (grade.curves, grade.eq) if f]
    return filters, (f"grade:{name}" if filters else None)


def deflicker_filters(window: int) -> tuple[list[str], str | None]:
    """ffmpeg's deflicker: each frame's brightness evened out against the mean of ``window`` frames."""
    if window <= 0:
        return [], None
    return [f"deflicker=size={window}:mode=am"], f"deflicker:{window} frames"


def fps_filters(mode: str, src_fps: float, fps: int, src_frames: int) -> tuple[list[str], str]:
    src, rate = rate_text(src_fps), str(fps)
    if math.isclose(src_fps, fps, rel_tol=0, abs_tol=1e-6):
        return [], f"fps:{rate} unchanged"
    if mode == "minterpolate" and src_frames < MIN_MINTERPOLATE_FRAMES:
        return [f"framerate=fps={rate}"], (
            f"fps:blend {src}->{rate} (minterpolate needs {MIN_MINTERPOLATE_FRAMES}+ frames)"
        )
    if mode == "minterpolate":
        return ([f"minterpolate=fps={rate}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"],
                f"fps:minterpolate {src}->{rate}")
    if mode == "blend" or mode in PYTHON_METHODS:  # flow/rife reach here only if not run in Python
        return [f"framerate=fps={rate}"], f"fps:blend {src}->{rate}"
    return [f"fps={rate}"], f"fps:repeat {src}->{rate}"


def frame_count_filters(total: int, fps: int) -> tuple[list[str], str]:
    """Exactly ``total`` frames with evenly spaced timestamps.

    tpad adds at most ``total`` clones (enough for any shortfall); trim cuts to ``total``; setpts
    renumbers, because minterpolate reports its end later than its last frame and tpad's clones
    would otherwise start after a gap (measured: 24 frames played as 19.86 fps).
    """
    return ([f"tpad=stop_mode=clone:stop={total}", f"trim=end_frame={total}", f"setpts=N/{fps}/TB"],
            f"frames:exactly {total}")


def geometry_filters(src_w: int, src_h: int, width: int, height: int, aspect: str) -> tuple[list[str], str]:
    if aspect == "fill":
        crop_w, crop_h = fill_crop(src_w, src_h, width, height)
        filters = []
        if (crop_w, crop_h) != (src_w, src_h):
            filters.append(f"crop={crop_w}:{crop_h}:{(src_w - crop_w) // 2}:{(src_h - crop_h) // 2}")
        filters += [_scale(width, height), "format=yuv420p"]
        note = f" (crop to {crop_w}x{crop_h})" if len(filters) > 2 else ""
        return filters, f"scale:lanczos fill {width}x{height}{note}"
    scaled_w, scaled_h = fit_size(src_w, src_h, width, height)
    filters = [_scale(scaled_w, scaled_h), "format=yuv420p"]
    note = ""
    if (scaled_w, scaled_h) != (width, height):
        x, y = _even((width - scaled_w) // 2), _even((height - scaled_h) // 2)
        filters.append(f"pad={width}:{height}:{x}:{y}:color=black")
        note = f" (picture {scaled_w}x{scaled_h}, padded)"
    return filters, f"scale:lanczos fit {width}x{height}{note}"


def sharpen_filters(amount: float) -> tuple[list[str], str | None]:
    if amount <= 0:
        return [], None
    return [f"unsharp=lx=5:ly=5:la={amount:.2f}:cx=5:cy=5:ca=0"], f"sharpen:unsharp {amount:g}"


def fit_size(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int]:
    """The largest even size with the source's aspect that fits inside width x height."""
    scale = min(width / src_w, height / src_h)
    return min(width, _even_round(src_w * scale)), min(height, _even_round(src_h * scale))


def fill_crop(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int]:
    """The centred source window with the output's aspect (scaled up, it fills width x height)."""
    scale = max(width / src_w, height / src_h)
    return min(src_w, max(1, round(width / scale))), min(src_h, max(1, round(height / scale)))


def even_down(value: int) -> int:
    return max(2, value - value % 2)


def rate_text(fps: float) -> str:
    """A frame rate as ffmpeg reads it exactly: "8", "7.5" -> "15/2", 29.97 -> "30000/1001"."""
    if float(fps).is_integer():
        return str(int(fps))
    rate = Fraction(fps).limit_denominator(1001)
    return f"{rate.numerator}/{rate.denominator}"


def _scale(width: int, height: int) -> str:
    return f"scale=w={width}:h={height}:flags=lanczos:out_color_matrix=bt709:out_range=tv"


def _even(value: int) -> int:
    return value - value % 2


def _even_round(value: float) -> int:
    return max(2, 2 * round(value / 2))


def _safe(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe file name for a filter graph: {name!r}")
    return name

"""Frame-rate conversion in Python: motion-compensated in-between frames from dense optical flow.

``retime`` streams a clip to a new frame rate holding two source frames at a time: output frame k
sits at source position k * src_fps / dst_fps; where that falls between source frames i and i+1, an
*interpolator* makes the frame at fraction t from the pair. Interpolators:

- ``FlowInterpolator`` (``flow``, no download): OpenCV DIS dense flow, both directions, at a reduced
  size (at most ``FLOW_WIDTH`` wide) and scaled up; each side is backward-warped to time t along flow
  estimated at t (forward-splatted from both sides, holes filled with a linear-motion estimate), and
  the two are blended with occlusion-aware weights (forward-backward consistency and temporal distance).
- ``BlendInterpolator`` (``blend``): a cross-fade, the reference point.
- RIFE (``rife``) lives in ``backend.models.rife`` and has the same ``pair(a, b) -> at(t)`` shape.

All frames are RGB uint8 (H, W, 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

import cv2
import numpy as np

FLOW_WIDTH = 640  # flow is computed at most this wide (1080p: one third), then scaled up
EXACT = 1e-3
SEEN = 0.5  # splatted visibility at which a side counts as fully seen at time t  # a target this close to a source frame takes the frame itself

At = Callable[[float], np.ndarray]


class Interpolator(Protocol):
    name: str

    def pair(self, first: np.ndarray, second: np.ndarray) -> At: ...


@dataclass(frozen=True)
class Position:
    index: int  # the source frame at or before the target time
    t: float  # 0 <= t < 1: how far towards the next source frame


def positions(src_fps: float, dst_fps: float, total: int, src_count: int) -> list[Position]:
    """Where each of ``total`` output frames falls among ``src_count`` source frames (past the end: the last)."""
    if src_fps <= 0 or dst_fps <= 0 or src_count < 1:
        raise ValueError("frame rates and the source frame count must be positive")
    found = []
    for k in range(total):
        where = k * src_fps / dst_fps
        index = math.floor(where + EXACT)
        t = where - index
        if index >= src_count - 1 or t < EXACT:
            found.append(Position(min(index, src_count - 1), 0.0))
        else:
            found.append(Position(index, t))
    return found


def retime(frames: Iterable[np.ndarray], plan: list[Position], interpolator: Interpolator,
           on_pair: Callable[[], None] | None = None) -> Iterator[np.ndarray]:
    """The output frames of ``plan`` from the streamed source ``frames`` (two held in memory at a time)."""
    source = iter(frames)
    current: np.ndarray | None = None
    following: np.ndarray | None = None
    index = -1  # index of ``current``
    at: At | None = None
    done = 0
    try:
        for position in plan:
            while index < position.index or (position.t > 0 and following is None):
                if index < position.index:
                    current = following if following is not None else next(source)
                    following, at, index = None, None, index + 1
                else:
                    following = next(source)
            if position.t == 0:
                frame = current
            else:
                if at is None:
                    if on_pair is not None:
                        on_pair()
                    at = interpolator.pair(current, following)
                frame = at(position.t)
            yield frame
            done += 1
    except StopIteration:  # the source had fewer frames than it said: hold the last one
        if current is None:
            return
        for _ in range(len(plan) - done):
            yield current
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


class BlendInterpolator:
    name = "blend"

    def pair(self, first: np.ndarray, second: np.ndarray) -> At:
        return lambda t: cv2.addWeighted(first, 1.0 - t, second, t, 0.0)


class FlowInterpolator:
    """Bidirectional DIS flow at reduced size, splatted flow at t, occlusion-aware blend (see module doc)."""

    name = "flow"

    def __init__(self, flow_width: int = FLOW_WIDTH, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> None:
        self.flow_width = flow_width
        self._dis = cv2.DISOpticalFlow_create(preset)

    def pair(self, first: np.ndarray, second: np.ndarray) -> At:
        height, width = first.shape[:2]
        scale = min(1.0, self.flow_width / width)
        small = (max(8, round(width * scale)), max(8, round(height * scale)))
        grey0 = cv2.cvtColor(cv2.resize(first, small, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        grey1 = cv2.cvtColor(cv2.resize(second, small, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        f01 = self._dis.calc(grey0, grey1, None)
        f10 = self._dis.calc(grey1, grey0, None)
        grid = np.dstack(np.meshgrid(np.arange(small[0], dtype=np.float32),
                                     np.arange(small[1], dtype=np.float32)))
        vis0 = _consistency(f01, f10, grid)
        vis1 = _consistency(f10, f01, grid)
        ratio = (width / small[0], height / small[1])
        full_grid = np.dstack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)))

        def at(t: float) -> np.ndarray:
            ft0, ft1, seen0, seen1 = _flow_at(f01, f10, vis0, vis1, grid, t)
            w0 = (1.0 - t) * _sample(vis0, grid + ft0) * seen0 + 1e-3
            w1 = t * _sample(vis1, grid + ft1) * seen1 + 1e-3
            # Up to full size: flows scale with the picture, weights are smooth enough to stretch.
            warped0 = _warp(first, _upscale_flow(ft0, (width, height), ratio) + full_grid)
            warped1 = _warp(second, _upscale_flow(ft1, (width, height), ratio) + full_grid)
            w0 = cv2.resize(w0, (width, height), interpolation=cv2.INTER_LINEAR)
            w1 = cv2.resize(w1, (width, height), interpolation=cv2.INTER_LINEAR)
            return cv2.blendLinear(warped0, warped1, w0, w1)

        return at


def _consistency(forward: np.ndarray, backward: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """1 where going ``forward`` and then ``backward`` returns home (visible in both), falling to 0 where not."""
    back = _sample(backward, grid + forward)
    error = np.sum((forward + back) ** 2, axis=-1)
    tolerance = 0.01 * (np.sum(forward ** 2, axis=-1) + np.sum(back ** 2, axis=-1)) + 0.5
    return np.exp(-error / tolerance).astype(np.float32)


def _flow_at(f01: np.ndarray, f10: np.ndarray, vis0: np.ndarray, vis1: np.ndarray, grid: np.ndarray,
             t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flows from time t back to frame 0 and on to frame 1, at each pixel of the frame at time t.

    Each visible pixel of frame 0 moves to x + t*F01(x) and of frame 1 to y + (1-t)*F10(y); splatting
    them there (bilinear, visibility-weighted) gives the motion at t where something lands; holes take
    the linear-motion estimate of Super SloMo (F_t0 = -(1-t)t F01 + t^2 F10, F_t1 = (1-t)^2 F01 - t(1-t) F10).
    """
    height, width = f01.shape[:2]
    motion = np.zeros((height, width, 2), np.float32)  # F01 equivalent at t (frame 0 -> frame 1 motion)
    weight = np.zeros((height, width), np.float32)
    _splat(motion, weight, grid + t * f01, f01, vis0 + 1e-3)
    seen0 = weight.copy()
    _splat(motion, weight, grid + (1.0 - t) * f10, -f10, vis1 + 1e-3)
    seen1 = weight - seen0
    linear_t0 = -(1.0 - t) * t * f01 + t * t * f10
    linear_t1 = (1.0 - t) ** 2 * f01 - t * (1.0 - t) * f10
    found = weight > 0.05
    motion = motion / np.maximum(weight, 1e-6)[..., None]
    ft0 = np.where(found[..., None], -t * motion, linear_t0).astype(np.float32)
    ft1 = np.where(found[..., None], (1.0 - t) * motion, linear_t1).astype(np.float32)
    holes = ~found
    seen0 = np.where(holes, 1.0, np.minimum(seen0 / SEEN, 1.0)).astype(np.float32)
    seen1 = np.where(holes, 1.0, np.minimum(seen1 / SEEN, 1.0)).astype(np.float32)
    return ft0, ft1, seen0, seen1


def _splat(motion: np.ndarray, weight: np.ndarray, target: np.ndarray, value: np.ndarray, w: np.ndarray) -> None:
    """Add ``value`` (weights ``w``) at the sub-pixel positions ``target``, bilinearly."""
    height, width = weight.shape
    size = height * width
    x, y = target[..., 0].ravel(), target[..., 1].ravel()
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    vx, vy, ws = value[..., 0].ravel(), value[..., 1].ravel(), w.ravel()
    total_w, total_x, total_y = np.zeros(size), np.zeros(size), np.zeros(size)
    for dx, dy, share in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        flat = (yi * width + xi)[inside]
        sw = (share * ws)[inside]
        total_w += np.bincount(flat, sw, minlength=size)
        total_x += np.bincount(flat, sw * vx[inside], minlength=size)
        total_y += np.bincount(flat, sw * vy[inside], minlength=size)
    weight += total_w.reshape(height, width).astype(np.float32)
    motion[..., 0] += total_x.reshape(height, width).astype(np.float32)
    motion[..., 1] += total_y.reshape(height, width).astype(np.float32)


def _sample(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    return cv2.remap(image, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _warp(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    return cv2.remap(image, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _upscale_flow(flow: np.ndarray, size: tuple[int, int], ratio: tuple[float, float]) -> np.ndarray:
    if flow.shape[1] == size[0] and flow.shape[0] == size[1]:
        return flow
    big = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR)
    big[..., 0] *= ratio[0]
    big[..., 1] *= ratio[1]
    return big

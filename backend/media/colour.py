"""Colour that holds across segments: each later segment's colour statistics matched to the first's.

Long videos are made in segments (or windows), and each one drifts a little in colour (the VAE
re-encodes, the sampler wanders). Per segment, the mean and spread of each channel in CIE Lab are
measured on a few frames spread through it; a later segment gets the per-channel gain and offset that
give it the first segment's statistics (Reinhard et al. 2001). The gain is clamped (a real change of
scene is not forced to look like the first) and the correction is applied lazily, frame by frame,
when the clip is read (nothing is written twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image

from backend.media.clip import Clip

SAMPLES = 6  # frames measured per segment
MAX_GAIN = 1.25  # clamp on the spread ratio (and 1 / MAX_GAIN)
MAX_SHIFT = (12.0, 10.0, 10.0)  # clamp on the mean shift per Lab channel (L in 0..100; a, b in about -127..127)


@dataclass(frozen=True)
class LabStats:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class Correction:
    gain: tuple[float, float, float]
    offset: tuple[float, float, float]  # applied as (x - source mean) * gain + source mean + offset

    def size(self) -> float:
        """How large the correction is: the largest mean shift (Lab units) plus gain change (x 10)."""
        return max(abs(o) for o in self.offset) + 10 * max(abs(g - 1) for g in self.gain)


def lab(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def measure(frames: Iterable[np.ndarray]) -> LabStats:
    pixels = np.concatenate([lab(f).reshape(-1, 3) for f in frames])
    return LabStats(tuple(float(v) for v in pixels.mean(0)), tuple(float(v) for v in pixels.std(0) + 1e-3))


def correction(source: LabStats, reference: LabStats) -> tuple[Correction, LabStats]:
    """The clamped correction that takes ``source`` to ``reference`` (and the source mean it pivots on)."""
    gain = tuple(float(np.clip(r / s, 1 / MAX_GAIN, MAX_GAIN)) for r, s in zip(reference.std, source.std))
    offset = tuple(float(np.clip(r - s, -m, m)) for r, s, m in zip(reference.mean, source.mean, MAX_SHIFT))
    return Correction(gain, offset), source  # type: ignore[arg-type]


def apply(frame: np.ndarray, fix: Correction, pivot: LabStats) -> np.ndarray:
    values = lab(frame)
    mean = np.float32(pivot.mean)
    values = (values - mean) * np.float32(fix.gain) + mean + np.float32(fix.offset)
    rgb = cv2.cvtColor(values, cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def sample_paths(paths: Sequence[Path], count: int = SAMPLES) -> list[Path]:
    if len(paths) <= count:
        return list(paths)
    return [paths[round(i * (len(paths) - 1) / (count - 1))] for i in range(count)]


def read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@dataclass(frozen=True)
class SegmentMatch:
    """Corrections for segments 2.. (by frame path), and a one-line summary for the record."""

    fixes: dict[Path, tuple[Correction, LabStats]]
    summary: str


def match_segments(segments: Sequence[Sequence[Path]]) -> SegmentMatch:
    """Measure every segment and derive each later one's correction towards the first."""
    reference = measure(read(p) for p in sample_paths(segments[0]))
    fixes: dict[Path, tuple[Correction, LabStats]] = {}
    sizes = []
    for paths in segments[1:]:
        fix, pivot = correction(measure(read(p) for p in sample_paths(paths)), reference)
        sizes.append(fix.size())
        for path in paths:
            fixes[path] = (fix, pivot)
    largest = max(sizes, default=0.0)
    summary = (f"lab mean/std of segments 2-{len(segments)} matched to segment 1 "
               f"(largest correction {largest:.1f}; gain within 1/{MAX_GAIN:g}..{MAX_GAIN:g})")
    return SegmentMatch(fixes, summary)


@dataclass(frozen=True)
class MatchedClip(Clip):
    """A clip of frame files read with each frame's segment correction applied."""

    match: SegmentMatch | None = None

    def frames(self) -> Iterator[np.ndarray]:
        fixes = self.match.fixes if self.match is not None else {}
        for path, frame in zip(self.frame_paths, super().frames()):
            found = fixes.get(path)
            yield frame if found is None else apply(frame, *found)

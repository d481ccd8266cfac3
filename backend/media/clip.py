"""A clip: an ordered list of frames on disk plus its frame rate.

Stages hand clips to each other instead of arrays, so long videos never sit in RAM at once
and every segment is a resumable artifact in the job's work folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Clip:
    frame_paths: tuple[Path, ...]
    fps: float
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.frame_paths)

    @property
    def duration(self) -> float:
        return len(self) / self.fps

    def frames(self) -> Iterator[np.ndarray]:
        """RGB uint8 frames (H, W, 3), loaded one at a time."""
        for path in self.frame_paths:
            with Image.open(path) as image:
                yield np.asarray(image.convert("RGB"))

    @classmethod
    def from_folder(cls, folder: Path, fps: float) -> "Clip":
        paths = tuple(sorted(folder.glob("*.png")))
        if not paths:
            raise ValueError(f"no frames in {folder}")
        with Image.open(paths[0]) as first:
            width, height = first.size
        return cls(paths, fps, width, height)


class MemoryClip:
    """Frames already decoded in RAM: the same interface as ``Clip`` for short clips (benchmarks, tests)."""

    def __init__(self, frames: list[np.ndarray], fps: float) -> None:
        if not frames:
            raise ValueError("a clip needs at least one frame")
        self._frames, self.fps = frames, fps
        self.height, self.width = frames[0].shape[:2]

    def frames(self) -> Iterator[np.ndarray]:
        return iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)


def save_frames(frames: Iterable[Image.Image | np.ndarray], folder: Path, *, start: int = 0) -> list[Path]:
    """Write frames as PNG (fast compression: these are temporary, lossless artifacts)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames, start=start):
        image = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))
        path = folder / f"{index:06d}.png"
        image.convert("RGB").save(path, compress_level=1)
        paths.append(path)
    return paths

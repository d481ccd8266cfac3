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


class VideoFileClip:
    """A video file's frames, decoded one at a time when read (the user's footage is never copied to PNG)."""

    def __init__(self, path: Path, fps: float, width: int, height: int, count: int) -> None:
        self.path, self.fps, self.width, self.height, self.count = Path(path), fps, width, height, count

    def frames(self) -> Iterator[np.ndarray]:
        from backend.media.video_io import iter_frames

        for index, frame in enumerate(iter_frames(self.path)):
            if index >= self.count:
                break
            yield frame

    def __len__(self) -> int:
        return self.count


class JoinedClip:
    """Clips of one size and rate, one after the other (the source video, then its continuation)."""

    def __init__(self, *parts: "Clip | VideoFileClip") -> None:
        first = parts[0]
        if any((p.width, p.height) != (first.width, first.height) for p in parts):
            raise ValueError("joined clips must share one frame size")
        self.parts, self.fps, self.width, self.height = parts, first.fps, first.width, first.height

    def frames(self) -> Iterator[np.ndarray]:
        for part in self.parts:
            yield from part.frames()

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)


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

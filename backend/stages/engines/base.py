"""What every motion engine shares: how it can be conditioned, the request it gets, frame-count rules.

An engine wraps one real diffusers pipeline. It declares its ``Conditioning`` — what it can be told
about where the video goes — and the motion stage picks the strategy that honours the storyboard
with the strongest conditioning the engine has:

- ``KEYFRAMES``: several images at chosen frame indices in one call (LTX-Video).
- ``FIRST_LAST``: a start and an end image per call (Wan first-last-frame).
- ``CONTINUATION``: a first frame, or the last frames of a video, continued for as long as asked
  (SkyReels-V2 diffusion forcing).
- ``FIRST_FRAME``: a first image only; the join toward the next keyframe is a labelled crossfade
  (SVD, CogVideoX: the fallbacks).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from PIL import Image

from backend.memory.plans import MemoryPlan
from backend.models.registry import ModelRef


class Conditioning(str, enum.Enum):
    KEYFRAMES = "keyframes"
    FIRST_LAST = "first_last"
    CONTINUATION = "continuation"
    FIRST_FRAME = "first_frame"

    @property
    def faithful(self) -> bool:
        """Told where the video goes (every keyframe reached), not only where it starts."""
        return self in (Conditioning.KEYFRAMES, Conditioning.FIRST_LAST)


@dataclass(frozen=True)
class FrameCondition:
    image: Image.Image  # at the generation size
    frame_index: int  # pixel frame of this call's output the image must appear at
    strength: float = 1.0


@dataclass(frozen=True)
class MotionRequest:
    """One pipeline call: what to make, and what it is conditioned on."""

    size: tuple[int, int]  # (width, height) to generate at
    frames: int  # frames wanted from this call (the engine rounds up to a count the model accepts)
    max_frames: int  # most frames one call may produce (native length, or the memory plan's cap)
    steps: int
    seed: int
    prompt: str
    negative_prompt: str
    motion_strength: float  # 0..1
    fps: int  # the frame rate the frames are made for
    first: Image.Image | None = None  # FIRST_FRAME / FIRST_LAST / CONTINUATION from an image
    last: Image.Image | None = None  # FIRST_LAST
    conditions: tuple[FrameCondition, ...] = ()  # KEYFRAMES
    video: tuple[Image.Image, ...] = field(default=())  # CONTINUATION / KEYFRAMES: frames to carry on from


class MotionEngine(Protocol):
    name: str
    conditioning: Conditioning

    def fps_for(self, ref: ModelRef, wanted: int) -> int:
        """The frame rate to make frames at when the video is wanted at ``wanted`` fps (native if possible)."""

    def frames_to_generate(self, ref: ModelRef, wanted: int, max_frames: int) -> int:
        """How many frames one call must produce to yield ``wanted`` usable ones."""

    def settings(self, ref: ModelRef, request: MotionRequest, plan: MemoryPlan) -> dict[str, Any]:
        """The engine-specific keyword arguments (recorded in the job record)."""

    def generate(self, pipe: Any, ref: ModelRef, request: MotionRequest, plan: MemoryPlan,
                 callback: Callable[..., dict], generator: Any) -> list[Image.Image]:
        """Run the pipeline and return the frames (PIL, RGB)."""


def sequence_length(ref: ModelRef) -> dict[str, Any]:
    """The text encoder's token limit for pipelines that take one (the registry knows each model's)."""
    return {"max_sequence_length": ref.max_sequence_length} if ref.max_sequence_length else {}


def round_to_step_plus_1(wanted: int, most: int, step: int, least: int) -> int:
    """The smallest ``step*k + 1`` count ≥ ``wanted`` (at least ``least``), not past the largest one ≤ ``most``."""
    ceiling = max(least, most - (most - 1) % step)
    count = max(least, wanted + (-(wanted - 1)) % step)
    return min(count, ceiling)


def round_to_4k_plus_1(wanted: int, most: int) -> int:
    """4k+1 frame counts (VAEs that compress time by 4: CogVideoX, Wan, SkyReels), at least 5."""
    return round_to_step_plus_1(wanted, most, 4, 5)


def frames_of(result: Any) -> list[Image.Image]:
    """A pipeline's first video as RGB PIL frames, whatever output type it returned."""
    import numpy as np

    frames = result.frames[0]
    if isinstance(frames, np.ndarray) or not isinstance(frames[0], Image.Image):
        array = np.asarray(frames)
        if array.dtype != np.uint8:
            array = (array * 255).round().clip(0, 255).astype("uint8")
        return [Image.fromarray(frame) for frame in array]
    return [frame.convert("RGB") for frame in frames]

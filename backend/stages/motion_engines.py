"""Image-to-video engines behind one interface: animate ``n`` frames starting from an image.

Each engine wraps a real diffusers pipeline; what differs between them (conditioning knobs, frame
count rules, prompt use) stays here, so the motion stage only plans segments and chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from PIL import Image

from backend.memory.plans import MemoryPlan
from backend.models.registry import ModelRef


@dataclass(frozen=True)
class ChunkRequest:
    image: Image.Image | None  # the conditioning (first) frame at the generation size; None for text-only engines
    size: tuple[int, int]  # (width, height) to generate at (the model's native size, or the plan's cap)
    frames: int  # frames wanted from this call, including the conditioning frame
    max_frames: int  # most frames one call may produce (native length, or the plan's cap)
    steps: int
    seed: int
    prompt: str
    negative_prompt: str
    motion_strength: float  # 0..1


class MotionEngine(Protocol):
    name: str
    uses_image: bool  # False: a direct text-to-video engine that ignores keyframes

    def frames_to_generate(self, ref: ModelRef, wanted: int, max_frames: int) -> int:
        """How many frames one call must produce to yield ``wanted`` usable ones."""

    def settings(self, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan) -> dict[str, Any]:
        """The engine-specific keyword arguments (recorded in the job record)."""

    def generate(self, pipe: Any, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan,
                 callback: Callable[..., dict], generator: Any) -> list[Image.Image]:
        """Run the pipeline and return the frames (PIL, RGB)."""


class SvdEngine:
    """Stable Video Diffusion (XT): image-only conditioning; motion via motion_bucket_id."""

    name = "svd"
    uses_image = True

    def frames_to_generate(self, ref: ModelRef, wanted: int, max_frames: int) -> int:
        # SVD takes any count; beyond its trained length quality drops, so chunks are capped there.
        return max(2, min(wanted, max_frames))

    def settings(self, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan) -> dict[str, Any]:
        return {
            "num_frames": self.frames_to_generate(ref, request.frames, request.max_frames),
            "num_inference_steps": request.steps,
            "fps": ref.fps,
            # 127 is SVD's default; map strength 0..1 onto a useful range around it.
            "motion_bucket_id": int(round(30 + request.motion_strength * 195)),
            "noise_aug_strength": round(0.02 + request.motion_strength * 0.08, 4),
            "decode_chunk_size": plan.decode_chunk_size,
            "min_guidance_scale": 1.0,
            "max_guidance_scale": 3.0,
        }

    def generate(self, pipe: Any, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan,
                 callback: Callable[..., dict], generator: Any) -> list[Image.Image]:
        kwargs = self.settings(ref, request, plan)
        result = pipe(image=request.image, width=request.size[0], height=request.size[1],
                      generator=generator, callback_on_step_end=callback, output_type="pil", **kwargs)
        return list(result.frames[0])


def round_to_4k_plus_1(wanted: int, most: int) -> int:
    """The smallest 4k+1 count ≥ ``wanted`` (at least 5), without passing the largest 4k+1 ≤ ``most``."""
    ceiling = max(5, most - (most - 1) % 4)
    count = max(5, wanted + (-(wanted - 1)) % 4)
    return min(count, ceiling)


class CogVideoXEngine:
    """CogVideoX image-to-video: text + image conditioning, frame counts of 4k+1."""

    name = "cogvideox"
    uses_image = True
    GUIDANCE = 6.0

    def frames_to_generate(self, ref: ModelRef, wanted: int, max_frames: int) -> int:
        # Frame counts must be 4k+1 (the VAE compresses time by 4); the learned positional
        # embeddings of the 5B-I2V checkpoint lock only the resolution.
        return round_to_4k_plus_1(wanted, max_frames)

    def settings(self, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "num_frames": self.frames_to_generate(ref, request.frames, request.max_frames),
            "num_inference_steps": request.steps,
            "guidance_scale": self.GUIDANCE,
            "use_dynamic_cfg": True,
        }
        if ref.max_sequence_length:
            settings["max_sequence_length"] = ref.max_sequence_length
        return settings

    def generate(self, pipe: Any, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan,
                 callback: Callable[..., dict], generator: Any) -> list[Image.Image]:
        kwargs = self.settings(ref, request, plan)
        result = pipe(image=request.image, prompt=request.prompt, negative_prompt=request.negative_prompt,
                      width=request.size[0], height=request.size[1], generator=generator,
                      callback_on_step_end=callback, output_type="pil", **kwargs)
        return list(result.frames[0])


class TextToVideoEngine:
    """The low-memory engine (ModelScope text-to-video): makes video from the prompt alone.

    It cannot start from a keyframe or an image; the studio only uses it when the requested engine
    cannot fit even at its lowest memory plan, and says so in the job record and the UI.
    """

    name = "text2video-ms"
    uses_image = False
    GUIDANCE = 9.0

    def frames_to_generate(self, ref: ModelRef, wanted: int, max_frames: int) -> int:
        return max(2, min(wanted, max_frames))

    def settings(self, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan) -> dict[str, Any]:
        return {
            "num_frames": self.frames_to_generate(ref, request.frames, request.max_frames),
            "num_inference_steps": request.steps,
            "guidance_scale": self.GUIDANCE,
        }

    def generate(self, pipe: Any, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan,
                 callback: Callable[..., dict], generator: Any) -> list[Image.Image]:
        kwargs = self.settings(ref, request, plan)
        # This older pipeline only has the legacy per-step callback(step, timestep, latents).
        def legacy_callback(step: int, timestep: Any, latents: Any) -> None:
            callback(pipe, step, timestep, {})

        result = pipe(prompt=request.prompt, negative_prompt=request.negative_prompt, width=request.size[0],
                      height=request.size[1], generator=generator, callback=legacy_callback, callback_steps=1,
                      output_type="np", **kwargs)
        frames = result.frames[0]  # float array (frames, H, W, 3) in 0..1
        return [Image.fromarray((frame * 255).round().clip(0, 255).astype("uint8")) for frame in frames]


ENGINES: dict[str, MotionEngine] = {
    "svd": SvdEngine(), "cogvideox": CogVideoXEngine(), "text2video-ms": TextToVideoEngine(),
}


def engine_for(ref: ModelRef, requested: str) -> MotionEngine:
    """The engine that drives ``ref`` (the low-memory model replaces the requested engine)."""
    return ENGINES["text2video-ms"] if ref.low_memory else ENGINES[requested]

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
    image: Image.Image  # the conditioning (first) frame, already at the engine's size
    frames: int  # frames wanted from this call, including the conditioning frame
    steps: int
    seed: int
    prompt: str
    negative_prompt: str
    motion_strength: float  # 0..1


class MotionEngine(Protocol):
    name: str

    def frames_to_generate(self, ref: ModelRef, wanted: int) -> int:
        """How many frames one call must produce to yield ``wanted`` usable ones."""

    def settings(self, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan) -> dict[str, Any]:
        """The engine-specific keyword arguments (recorded in the job record)."""

    def generate(self, pipe: Any, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan,
                 callback: Callable[..., dict], generator: Any) -> list[Image.Image]:
        """Run the pipeline and return the frames (PIL, RGB)."""


class SvdEngine:
    """Stable Video Diffusion (XT): image-only conditioning; motion via motion_bucket_id."""

    name = "svd"

    def frames_to_generate(self, ref: ModelRef, wanted: int) -> int:
        # SVD takes any count; beyond its trained length quality drops, so chunks are capped there.
        return max(2, min(wanted, ref.frames))

    def settings(self, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan) -> dict[str, Any]:
        return {
            "num_frames": self.frames_to_generate(ref, request.frames),
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
        result = pipe(image=request.image, width=request.image.width, height=request.image.height,
                      generator=generator, callback_on_step_end=callback, output_type="pil", **kwargs)
        return list(result.frames[0])


class CogVideoXEngine:
    """CogVideoX image-to-video: text + image conditioning, frame counts of 4k+1."""

    name = "cogvideox"
    GUIDANCE = 6.0

    def frames_to_generate(self, ref: ModelRef, wanted: int) -> int:
        if not ref.is_tiny:
            return ref.frames  # the 5B-I2V checkpoint's learned positional embeddings fix 49 frames
        count = max(5, min(wanted, ref.frames))
        return count + (-(count - 1)) % 4  # round up to 4k+1

    def settings(self, ref: ModelRef, request: ChunkRequest, plan: MemoryPlan) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "num_frames": self.frames_to_generate(ref, request.frames),
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
                      width=request.image.width, height=request.image.height, generator=generator,
                      callback_on_step_end=callback, output_type="pil", **kwargs)
        return list(result.frames[0])


ENGINES: dict[str, MotionEngine] = {"svd": SvdEngine(), "cogvideox": CogVideoXEngine()}

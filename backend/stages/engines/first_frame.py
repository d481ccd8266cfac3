"""First-frame-only engines, the fallbacks: SVD-XT and CogVideoX-5B image-to-video.

They can only be told where a segment starts; the motion stage crossfades each segment's tail toward
the next keyframe and says so in the record ("first-frame only: joins are crossfaded").
"""

from __future__ import annotations

from typing import Any, Callable

from PIL import Image

from backend.memory.plans import MemoryPlan
from backend.models.registry import ModelRef
from backend.stages.engines.base import Conditioning, MotionRequest, frames_of, round_to_4k_plus_1, sequence_length


class SvdEngine:
    """Stable Video Diffusion (XT): image-only conditioning; motion via motion_bucket_id."""

    name = "svd"
    conditioning = Conditioning.FIRST_FRAME

    def fps_for(self, ref: ModelRef, wanted: int) -> int:
        return ref.fps  # trained at one rate; the finish converts

    def frames_to_generate(self, ref: ModelRef, wanted: int, max_frames: int) -> int:
        # SVD takes any count; beyond its trained length quality drops, so chunks are capped there.
        return max(2, min(wanted, max_frames))

    def settings(self, ref: ModelRef, request: MotionRequest, plan: MemoryPlan) -> dict[str, Any]:
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

    def generate(self, pipe: Any, ref: ModelRef, request: MotionRequest, plan: MemoryPlan,
                 callback: Callable[..., dict], generator: Any) -> list[Image.Image]:
        kwargs = self.settings(ref, request, plan)
        result = pipe(image=request.first, width=request.size[0], height=request.size[1],
                      generator=generator, callback_on_step_end=callback, output_type="pil", **kwargs)
        return frames_of(result)


class CogVideoXEngine:
    """CogVideoX image-to-video: text + image conditioning, frame counts of 4k+1."""

    name = "cogvideox"
    conditioning = Conditioning.FIRST_FRAME

    def fps_for(self, ref: ModelRef, wanted: int) -> int:
        return ref.fps  # trained at one rate; the finish converts
    GUIDANCE = 6.0

    def frames_to_generate(self, ref: ModelRef, wanted: int, max_frames: int) -> int:
        # Always the native count (49 for the 5B-I2V): its learned positional embeddings are swapped for
        # sin-cos ones at any other count. The motion stage trims what it does not need.
        return round_to_4k_plus_1(max_frames, max_frames)

    def settings(self, ref: ModelRef, request: MotionRequest, plan: MemoryPlan) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "num_frames": self.frames_to_generate(ref, request.frames, request.max_frames),
            "num_inference_steps": request.steps,
            "guidance_scale": self.GUIDANCE,
            "use_dynamic_cfg": True,
        }
        settings.update(sequence_length(ref))
        return settings

    def generate(self, pipe: Any, ref: ModelRef, request: MotionRequest, plan: MemoryPlan,
                 callback: Callable[..., dict], generator: Any) -> list[Image.Image]:
        kwargs = self.settings(ref, request, plan)
        result = pipe(image=request.first, prompt=request.prompt, negative_prompt=request.negative_prompt,
                      width=request.size[0], height=request.size[1], generator=generator,
                      callback_on_step_end=callback, output_type="pil", **kwargs)
        return frames_of(result)

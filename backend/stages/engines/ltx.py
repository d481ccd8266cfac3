"""LTX-Video through ``LTXConditionPipeline``: every keyframe in the window at its frame index, one call.

Conditions are images at pixel frame indices (and, for the next window of a long video, the previous
window's last frames as a video condition at index 0), so the video passes through the storyboard
instead of drifting away from it. LTX makes 24-30 fps natively; frame counts are 8k+1.
"""

from __future__ import annotations

from typing import Any, Callable

from PIL import Image

from backend.memory.plans import MemoryPlan
from backend.models.registry import ModelRef
from backend.stages.engines.base import Conditioning, MotionRequest, frames_of, round_to_step_plus_1, sequence_length

NATIVE_FPS = (24, 30)
GUIDANCE = 3.0  # the 0.9.5 model card's value; step-distilled checkpoints run without CFG (1.0)
# Timestep-aware VAE (0.9.1 and later): decode at a small timestep, little noise on image conditions.
DECODE_TIMESTEP = 0.05
IMAGE_COND_NOISE_SCALE = 0.025


class LtxEngine:
    name = "ltx"
    conditioning = Conditioning.KEYFRAMES

    def fps_for(self, ref: ModelRef, wanted: int) -> int:
        return min(max(wanted, NATIVE_FPS[0]), NATIVE_FPS[1])

    def frames_to_generate(self, ref: ModelRef, wanted: int, max_frames: int) -> int:
        # The VAE compresses time by 8: 8k+1 frames; at least 9 so a window holds two latent frames.
        return round_to_step_plus_1(wanted, max_frames, 8, 9)

    def settings(self, ref: ModelRef, request: MotionRequest, plan: MemoryPlan) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "num_frames": self.frames_to_generate(ref, request.frames, request.max_frames),
            "frame_rate": request.fps,
            "num_inference_steps": request.steps,
            "guidance_scale": GUIDANCE if ref.cfg else 1.0,
            "decode_timestep": DECODE_TIMESTEP,
            "image_cond_noise_scale": IMAGE_COND_NOISE_SCALE,
        }
        settings.update(sequence_length(ref))
        return settings

    def generate(self, pipe: Any, ref: ModelRef, request: MotionRequest, plan: MemoryPlan,
                 callback: Callable[..., dict], generator: Any) -> list[Image.Image]:
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        conditions = [LTXVideoCondition(image=c.image, frame_index=c.frame_index, strength=c.strength)
                      for c in request.conditions]
        if request.video:  # the previous window's tail: the new window starts where it ended
            conditions.insert(0, LTXVideoCondition(video=list(request.video), frame_index=0, strength=1.0))
        result = pipe(conditions=conditions, prompt=request.prompt, negative_prompt=request.negative_prompt,
                      width=request.size[0], height=request.size[1], generator=generator,
                      callback_on_step_end=callback, output_type="pil", **self.settings(ref, request, plan))
        return frames_of(result)

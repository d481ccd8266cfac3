"""Wan first-last-frame through ``WanImageToVideoPipeline(image=start, last_image=end)``.

Each segment is told its start and its end keyframe, so it arrives where the storyboard says. Wan
makes 16 fps and frame counts of 4k+1. Checkpoints that expand timesteps (Wan2.2-TI2V-5B) ignore
``last_image``; the engine refuses them rather than pretend.
"""

from __future__ import annotations

from typing import Any, Callable

from PIL import Image

from backend.errors import ModelNotAvailable
from backend.memory.plans import MemoryPlan
from backend.models.registry import ModelRef
from backend.stages.engines.base import Conditioning, MotionRequest, frames_of, round_to_4k_plus_1, sequence_length

GUIDANCE = 5.0  # the pipeline's and the model card's default


class WanEngine:
    name = "wan"
    conditioning = Conditioning.FIRST_LAST

    def fps_for(self, ref: ModelRef, wanted: int) -> int:
        return ref.fps

    def frames_to_generate(self, ref: ModelRef, wanted: int, max_frames: int) -> int:
        return round_to_4k_plus_1(wanted, max_frames)

    def settings(self, ref: ModelRef, request: MotionRequest, plan: MemoryPlan) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "num_frames": self.frames_to_generate(ref, request.frames, request.max_frames),
            "num_inference_steps": request.steps,
            "guidance_scale": GUIDANCE if ref.cfg else 1.0,
        }
        settings.update(sequence_length(ref))
        return settings

    def generate(self, pipe: Any, ref: ModelRef, request: MotionRequest, plan: MemoryPlan,
                 callback: Callable[..., dict], generator: Any) -> list[Image.Image]:
        if request.last is not None and getattr(pipe.config, "expand_timesteps", False):
            raise ModelNotAvailable(f"{ref.label or ref.key} ignores the end frame (it expands timesteps, like "
                                    "Wan2.2-TI2V-5B): choose a first-last-frame Wan checkpoint for this engine.")
        result = pipe(image=request.first, last_image=request.last, prompt=request.prompt,
                      negative_prompt=request.negative_prompt, width=request.size[0], height=request.size[1],
                      generator=generator, callback_on_step_end=callback, output_type="pil",
                      **self.settings(ref, request, plan))
        return frames_of(result)

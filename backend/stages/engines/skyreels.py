"""SkyReels-V2 diffusion forcing: one long shot from a first frame, or a video carried on (Extend).

From an image: ``SkyReelsV2DiffusionForcingImageToVideoPipeline`` makes the whole duration in one
call; past its base length it works in overlapping windows internally (``overlap_history``). From a
video: ``SkyReelsV2DiffusionForcingVideoToVideoPipeline``, built on the same components (not with
``from_pipe``, which would cast them), is conditioned on the source's last frames, so motion carries
on instead of restarting from one frame. It returns the input clip, then ``overlap_history`` frames
re-decoding its tail, then the new frames; only the new ones are kept.

Diffusion forcing adds noise to the carried frames with torch's global generator, not ``generator=``,
so the engine seeds it too: the same seed gives the same video.
"""

from __future__ import annotations

from typing import Any, Callable

from PIL import Image

from backend.memory.plans import MemoryPlan
from backend.models.registry import ModelRef
from backend.stages.engines.base import Conditioning, MotionRequest, frames_of, round_to_4k_plus_1, sequence_length

GUIDANCE = 5.0  # the image-to-video pipeline's default
OVERLAP_HISTORY = 17  # frames shared by consecutive windows of a long video (recommended: 17 or 37); 4k+1
ADD_NOISE_CONDITION = 20  # noise on the clean overlap, which smooths long videos (recommended: 20)
CAUSAL_BLOCK = 1  # synchronous denoising; passed every call, since the transformer keeps the last value


def overlap_for(base: int) -> int:
    """Window overlap in frames (4k+1), shorter than the window."""
    return min(OVERLAP_HISTORY, base - 4)


class SkyReelsEngine:
    name = "skyreels"
    conditioning = Conditioning.CONTINUATION

    def fps_for(self, ref: ModelRef, wanted: int) -> int:
        return ref.fps

    def frames_to_generate(self, ref: ModelRef, wanted: int, max_frames: int) -> int:
        """One call makes the whole shot: its base window, then whole further windows (they tile exactly)."""
        base = round_to_4k_plus_1(max_frames, max_frames)
        if wanted <= base:
            return round_to_4k_plus_1(wanted, base)
        step = base - overlap_for(base)
        return base + -(-(wanted - base) // step) * step

    def settings(self, ref: ModelRef, request: MotionRequest, plan: MemoryPlan) -> dict[str, Any]:
        base = round_to_4k_plus_1(request.max_frames, request.max_frames)
        overlap = overlap_for(base)
        # A continuation re-decodes ``overlap`` frames of the source's tail before the new ones.
        wanted = request.frames + (overlap if request.video else 0)
        frames = self.frames_to_generate(ref, wanted, request.max_frames)
        settings: dict[str, Any] = {
            "num_frames": frames, "base_num_frames": base, "num_inference_steps": request.steps,
            "guidance_scale": GUIDANCE if ref.cfg else 1.0, "fps": request.fps, "causal_block_size": CAUSAL_BLOCK,
            "ar_step": 0,
        }
        if frames > base or request.video:  # windows share history frames; a continuation always does
            settings.update(overlap_history=overlap, addnoise_condition=ADD_NOISE_CONDITION)
        settings.update(sequence_length(ref))
        return settings

    def generate(self, pipe: Any, ref: ModelRef, request: MotionRequest, plan: MemoryPlan,
                 callback: Callable[..., dict], generator: Any) -> list[Image.Image]:
        import torch

        kwargs = self.settings(ref, request, plan)
        common = dict(prompt=request.prompt, negative_prompt=request.negative_prompt, width=request.size[0],
                      height=request.size[1], generator=generator, callback_on_step_end=callback, output_type="pil")
        torch.manual_seed(request.seed)  # the carried frames' noise comes from the global generator
        if request.video:
            from diffusers import SkyReelsV2DiffusionForcingVideoToVideoPipeline

            continuation = SkyReelsV2DiffusionForcingVideoToVideoPipeline(**pipe.components)
            continuation.set_progress_bar_config(disable=True)
            frames = frames_of(continuation(video=list(request.video), **common, **kwargs))
            new = frames[len(request.video) + kwargs["overlap_history"]:]
            return new[: request.frames]
        return frames_of(pipe(image=request.first, **common, **kwargs))[: request.frames]

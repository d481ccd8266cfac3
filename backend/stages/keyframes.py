"""Keyframes: the storyboard's images, one per storyboard frame (its time, prompt and seed).

Keyframe 0 comes from text (``StableDiffusionXLPipeline``) or is the user's image / the last frame
of the video being extended. How the later keyframes keep its subject and place is the job's
consistency mode (docs/CONSISTENCY.md): ``ip-adapter`` draws each from its own prompt with keyframe 0
as an image prompt and the shared seed; ``img2img`` repaints the previous keyframe with the next
prompt; ``independent`` draws each from its own prompt with the shared seed. LoRAs chosen for the
keyframes are set on the pipeline first (``keyframe_style``). Keyframes already on disk are kept:
that makes a retry after an out-of-memory step-down (or a resume) cheap, and it is how a review edit
regenerates only the keyframes whose file it removed.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from backend.media.imaging import fit_fill, fit_pad
from backend.memory.estimates import Workload
from backend.memory.plans import MemoryPlan
from backend.models.ip_adapter import with_adapter
from backend.models.registry import ModelRef, keyframe_model_for
from backend.prompting import PromptAnalysis
from backend.record import KeyframesRecord, SizeCap, Storyboard
from backend.seeds import derive_seed, torch_generator
from backend.stages.context import StageContext
from backend.stages.keyframe_style import (
    Consistency,
    apply_loras,
    choose_consistency,
    lora_records,
    models_root_of,
    prepare_consistency,
)
from backend.work import denoising_steps

log = logging.getLogger(__name__)

KEYFRAME_NAME = re.compile(r"keyframe_\d{3}\.png")  # the only keyframe files a resume trusts
IMG2IMG_STRENGTH = 0.55  # enough change to move the scene on, little enough to keep subject and palette

# SDXL's trained resolutions (width, height); keyframes use the one closest to the motion aspect.
SDXL_BUCKETS = ((1024, 1024), (1152, 896), (1216, 832), (1344, 768), (1536, 640),
                (896, 1152), (832, 1216), (768, 1344), (640, 1536))


@dataclass(frozen=True)
class KeyframeInputs:
    analysis: PromptAnalysis
    storyboard: Storyboard  # one frame per keyframe: time, prompt, seed (the runner may have capped the count)
    motion_aspect: float  # width / height of the motion the keyframes will start
    start_image: Image.Image | None = None  # the user's own first frame (i2v, extend)
    start_fit: str = "pad"  # i2v: the whole picture, padded; extend: filled like the continuation will be
    requested: int | None = None  # what the spec asked for, when ``count`` differs


@dataclass(frozen=True)
class KeyframeResult:
    paths: list[Path]
    record: KeyframesRecord


def keyframe_size(ref: ModelRef, motion_aspect: float) -> tuple[int, int]:
    """SDXL's trained size closest to the motion aspect, scaled for models trained smaller (Turbo: 512²)."""
    if ref.is_tiny:
        return ref.width, ref.height
    width, height = min(SDXL_BUCKETS, key=lambda wh: abs(wh[0] / wh[1] - motion_aspect))
    scale = min(1.0, (ref.width * ref.height / (1024 * 1024)) ** 0.5)
    return _multiple_of_64(width * scale), _multiple_of_64(height * scale)


def _multiple_of_64(value: float) -> int:
    return max(64, int(round(value / 64)) * 64)


def keyframe_paths(workdir: Path, count: int) -> list[Path]:
    return [workdir / "keyframes" / f"keyframe_{i:03d}.png" for i in range(count)]


def run(ctx: StageContext, inputs: KeyframeInputs) -> KeyframeResult:
    spec, analysis, storyboard = ctx.spec, inputs.analysis, inputs.storyboard
    count = len(storyboard.frames)
    # 1. Model, size and settings.
    ref = keyframe_model_for(spec.model_set, spec.preset)
    models_root = models_root_of(ctx)
    consistency = choose_consistency(spec, models_root, strength=IMG2IMG_STRENGTH, count=count)
    # The IP-Adapter's encoder and layers load into the same pipeline: the memory plan counts them too.
    planned = with_adapter(ref, consistency.adapter) if consistency.adapter is not None else ref
    width, height = keyframe_size(ref, inputs.motion_aspect)
    plan = ctx.plan(planned, Workload(width, height, 1, 2 if ref.cfg else 1))
    capped = None
    if plan.capped:  # even the lowest memory level cannot fit the full size: the planner said how far to go
        width, height = plan.cap_width or width, plan.cap_height or height
        capped = SizeCap(width, height)
        ctx.log(f"keyframes capped at {width}×{height} to fit in memory")
    steps = denoising_steps(spec, ref, "keyframes")
    if spec.guidance is not None:
        guidance = spec.guidance
    else:  # distilled models (SDXL-Turbo) are made to run without classifier-free guidance
        guidance = spec.preset_values.keyframe_guidance if ref.cfg else 0.0
    paths = keyframe_paths(ctx.workdir, count)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    prompts = storyboard.prompts
    seeds = keyframe_seeds(spec.seed, storyboard, shared=consistency.mode != "img2img")
    record = KeyframesRecord(model=ref.key, size=[width, height], steps=steps, guidance=guidance,
                             img2img_strength=IMG2IMG_STRENGTH if consistency.mode == "img2img" else None,
                             prompts=prompts, seeds=seeds, capped=capped, step_downs=ctx.step_downs,
                             times=storyboard.times, consistency=consistency.mode,
                             consistency_detail=dict(consistency.detail),
                             loras=lora_records(spec.loras, models_root, "keyframes") or None)
    if consistency.mode == "img2img" and spec.consistency == "auto" and count > 1:
        ctx.log(f"consistency: {consistency.reason}")
    if inputs.requested is not None and inputs.requested != count:
        why = ("too few frames for more" if count < inputs.requested else
               "the motion engine needs more" if count > 1 else "the motion engine uses only the first")
        record.keyframes_capped = f"{inputs.requested} → {count}: {why}"
        ctx.log(f"storyboard of {count} keyframes instead of {inputs.requested}: {why}")

    # 2. The user's own first frame, if any, is keyframe 0 as given: the whole picture, its aspect kept
    #    (padded to the generation size, never cropped or stretched).
    if inputs.start_image is not None:
        fit = fit_pad if inputs.start_fit == "pad" else fit_fill
        if not paths[0].exists():
            fit(inputs.start_image, (width, height)).save(paths[0])
        seeds[0] = None
        how = "padded" if inputs.start_fit == "pad" else "filled"
        record.start_image = f"{inputs.start_image.width}x{inputs.start_image.height} {how} to {width}x{height}"

    # 3. Generate what is missing, under the memory manager (which steps down on OOM and re-calls us).
    def generate(pipe: Any, plan: MemoryPlan) -> None:
        record.memory_plan = plan.to_dict()
        # A cached pipeline may carry the last job's adapters: put it into exactly this job's state.
        prepare_consistency(pipe, consistency, models_root)
        record.loras = apply_loras(pipe, spec.loras, models_root, "keyframes", ref=ref) or None
        for index in range(count):
            if paths[index].exists():
                ctx.report((index + 1) / count, f"keyframe {index + 1}/{count} (kept)", preview=paths[index])
                continue
            ctx.check_cancelled()
            image = _one_keyframe(ctx, pipe, consistency, index, count, prompts[index], analysis.negative_prompt,
                                  seeds[index], paths, width, height, steps, guidance)
            _save_atomic(image, paths[index])
            ctx.report((index + 1) / count, f"keyframe {index + 1}/{count}", preview=paths[index])

    if not all(p.exists() for p in paths):
        ctx.run(planned, generate, plan=plan)
    return KeyframeResult(paths, record)


def keyframe_seeds(job_seed: int | None, storyboard: Storyboard, *, shared: bool) -> list[int | None]:
    """The seed of each keyframe: None for the user's own images, the frame's seed otherwise.

    ``shared`` (IP-Adapter and independent modes): a frame that still carries its default per-keyframe
    seed uses keyframe 0's instead, so every keyframe starts from the same noise (same layout and light);
    a seed the user chose while reviewing is kept as it is.
    """
    seeds: list[int | None] = []
    for index, frame in enumerate(storyboard.frames):
        default = derive_seed(job_seed, "keyframe", index)
        seed = frame.seed if frame.seed is not None or frame.source != "generated" else default
        seeds.append(derive_seed(job_seed, "keyframe", 0) if shared and seed == default else seed)
    return seeds


def _one_keyframe(ctx: StageContext, pipe: Any, consistency: Consistency, index: int, count: int, prompt: str,
                  negative: str, seed: int | None, paths: list[Path], width: int, height: int, steps: int,
                  guidance: float) -> Image.Image:
    callback = ctx.step_callback(steps, start=index / count, span=1 / count, label=f"keyframe {index + 1}/{count}")
    common = dict(prompt=prompt, negative_prompt=negative, guidance_scale=guidance,
                  generator=torch_generator(seed), callback_on_step_end=callback, output_type="pil")
    try:
        if consistency.mode == "ip-adapter":
            # Keyframe 0 is drawn with the adapter at scale 0 (exactly the plain model); later ones look at it.
            if index == 0:
                pipe.set_ip_adapter_scale(0.0)
                reference = Image.new("RGB", (width, height), (127, 127, 127))
            else:
                pipe.set_ip_adapter_scale(consistency.scale)
                reference = _open_rgb(paths[0])
            result = pipe(width=width, height=height, num_inference_steps=steps, ip_adapter_image=reference, **common)
        elif index == 0 or consistency.mode == "independent":
            result = pipe(width=width, height=height, num_inference_steps=steps, **common)
        else:
            from diffusers import StableDiffusionXLImg2ImgPipeline

            # from_pipe casts shared components to float32 unless told the dtype: keep the plan's.
            img2img = StableDiffusionXLImg2ImgPipeline.from_pipe(pipe, dtype=pipe.dtype)
            img2img.set_progress_bar_config(disable=True)
            start = _open_rgb(paths[index - 1])
            # img2img runs strength × steps denoising steps; report against that many.
            effective = max(1, int(steps * IMG2IMG_STRENGTH))
            common["callback_on_step_end"] = ctx.step_callback(
                effective, start=index / count, span=1 / count, label=f"keyframe {index + 1}/{count}")
            result = img2img(image=start, strength=IMG2IMG_STRENGTH, num_inference_steps=steps, **common)
    finally:
        pipe.maybe_free_model_hooks()
    return result.images[0]


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _save_atomic(image: Image.Image, path: Path) -> None:
    """Write beside the target and rename, so a crash never leaves a half-written keyframe."""
    tmp = path.with_suffix(".tmp.png")
    with open(tmp, "wb") as handle:
        image.save(handle, format="PNG")
        handle.flush()
        os.fsync(handle.fileno())  # the rename must not reach the disk before the data does
    tmp.replace(path)


save_keyframe = _save_atomic  # public: the storyboard editor writes an uploaded keyframe the same way

"""Injected OOMs on the tiny pipelines (CPU): step-down, VAE-decode retry without re-sampling.

The manager gets a simulated CUDA profile and a pinned "gpu" start plan, so it escalates like on a GPU;
the placer applies the plan's VAE and chunking settings but keeps the pipeline on the CPU, and the
loader loads in float32. Nothing calls CUDA.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch
from PIL import Image

from backend.memory.hardware import detect_hardware
from backend.memory.manager import MemoryManager
from backend.memory.plans import MemoryPlan, apply_component_settings
from backend.models.loader import load_pipeline
from backend.models.registry import MODELS
from backend.paths import runtime_paths

TINY_SDXL, TINY_SVD = MODELS["tiny-sdxl"], MODELS["tiny-svd"]


def keep_on_cpu(pipe: Any, plan: MemoryPlan) -> Any:
    return apply_component_settings(pipe.to("cpu"), plan)


def load_fp32(ref: Any, root: Any, *, dtype: Any) -> Any:
    return load_pipeline(ref, root, dtype=torch.float32)


@pytest.fixture(scope="module")
def memory() -> MemoryManager:
    return MemoryManager(detect_hardware(vram_gb=24, ram_gb=32), runtime_paths().models,
                         placer=keep_on_cpu, loader=load_fp32)


def gpu_plan(ref: Any, **changes: Any) -> MemoryPlan:
    return MemoryPlan("gpu", "cuda", "float32", model=ref.key, **changes)


def oom_once(counter: dict, key: str, message: str = "CUDA out of memory. Tried to allocate 1.00 GiB") -> Callable:
    """A forward pre-hook raising torch.OutOfMemoryError on its first call only."""

    def hook(module: Any, args: Any) -> None:
        counter[key] = counter.get(key, 0) + 1
        if counter[key] == 1:
            raise torch.OutOfMemoryError(message)

    return hook


def sdxl_work(counter: dict, *, raise_in_step: bool = False) -> Callable[[Any, MemoryPlan], list[Image.Image]]:
    def work(pipe: Any, plan: MemoryPlan) -> list[Image.Image]:
        counter["attempts"] = counter.get("attempts", 0) + 1

        def on_step_end(p: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            counter["steps"] = counter.get("steps", 0) + 1
            if raise_in_step and counter["attempts"] == 1:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return kwargs

        return pipe("a lighthouse", num_inference_steps=2, width=TINY_SDXL.width, height=TINY_SDXL.height,
                    callback_on_step_end=on_step_end, output_type="pil").images

    return work


def test_oom_in_a_denoising_step_steps_down_and_finishes(memory: MemoryManager) -> None:
    counter: dict = {}
    steps: list[dict] = []
    images = memory.run(TINY_SDXL, sdxl_work(counter, raise_in_step=True), steps=steps, plan=gpu_plan(TINY_SDXL))
    assert len(images) == 1 and images[0].size == (TINY_SDXL.width, TINY_SDXL.height)
    assert counter["attempts"] == 2 and counter["steps"] == 1 + 2
    (step,) = steps
    assert step.kind == "step_down" and (step.from_plan["level"], step.to_plan["level"]) == ("gpu", "model_offload")
    assert "resumed" in step.action


def test_vae_decode_oom_retries_tiled_without_resampling(memory: MemoryManager) -> None:
    counter: dict = {}
    steps: list[dict] = []
    pipe = memory.pipeline(TINY_SDXL, gpu_plan(TINY_SDXL))
    hook = pipe.vae.decoder.register_forward_pre_hook(oom_once(counter, "decodes"))
    try:
        images = memory.run(TINY_SDXL, sdxl_work(counter), steps=steps, plan=gpu_plan(TINY_SDXL))
    finally:
        hook.remove()
    assert len(images) == 1
    assert counter["attempts"] == 1 and counter["steps"] == 2  # the denoising loop ran once
    (step,) = steps
    assert step.kind == "decode_retry" and step.to_plan["vae_tiling"] and not step.from_plan["vae_tiling"]
    assert step.to_plan["level"] == "gpu" and "keeping the sampled latents" in step.action
    assert pipe.vae.use_tiling and "decode" not in vars(pipe.vae)  # guard removed, tiling kept for the stage
    memory.pipeline(TINY_SDXL, gpu_plan(TINY_SDXL))  # the next job's plan switches tiling off again
    assert not pipe.vae.use_tiling


def test_decode_oom_that_persists_falls_back_to_a_lower_level(memory: MemoryManager) -> None:
    counter: dict = {}
    steps: list[dict] = []

    def twice(module: Any, args: Any) -> None:
        counter["decodes"] = counter.get("decodes", 0) + 1
        if counter["decodes"] <= 2:
            raise torch.OutOfMemoryError("CUDA out of memory (decoder)")

    pipe = memory.pipeline(TINY_SDXL, gpu_plan(TINY_SDXL))
    hook = pipe.vae.decoder.register_forward_pre_hook(twice)
    try:
        images = memory.run(TINY_SDXL, sdxl_work(counter), steps=steps, plan=gpu_plan(TINY_SDXL))
    finally:
        hook.remove()
    assert len(images) == 1 and counter["attempts"] == 2 and counter["steps"] == 4
    assert [s.kind for s in steps] == ["decode_retry", "step_down"]
    assert steps[1].from_plan["vae_tiling"] and steps[1].to_plan["level"] == "model_offload"


def test_svd_decode_oom_decodes_in_smaller_chunks(memory: MemoryManager) -> None:
    counter: dict = {}
    steps: list[dict] = []
    frames = 4  # fewer than the tiny model's 8 keeps the test quick; SVD takes any count
    plan = gpu_plan(TINY_SVD, decode_chunk_size=frames)
    image = Image.new("RGB", (TINY_SVD.width, TINY_SVD.height), (90, 140, 200))

    def work(pipe: Any, plan: MemoryPlan) -> list[Image.Image]:
        def on_step_end(p: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            counter["steps"] = counter.get("steps", 0) + 1
            return kwargs

        result = pipe(image=image, width=TINY_SVD.width, height=TINY_SVD.height, num_frames=frames,
                      num_inference_steps=2, decode_chunk_size=plan.decode_chunk_size,
                      callback_on_step_end=on_step_end, output_type="pil")
        return list(result.frames[0])

    pipe = memory.pipeline(TINY_SVD, plan)
    hook = pipe.vae.decoder.register_forward_pre_hook(oom_once(counter, "decodes"))
    try:
        video = memory.run(TINY_SVD, work, steps=steps, plan=plan)
    finally:
        hook.remove()
    assert len(video) == frames and counter["steps"] == 2
    assert counter["decodes"] == 1 + 2  # the failed chunk of 4 frames, then two chunks of 2
    (step,) = steps
    assert step.kind == "decode_retry" and step.to_plan["decode_chunk_size"] == frames // 2
    assert not step.to_plan["vae_tiling"]  # the temporal decoder has no tiling

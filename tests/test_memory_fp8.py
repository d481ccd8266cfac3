"""The fp8 memory level: group offload with the denoiser's weights stored in float8 (diffusers' layerwise
casting), below the exact-weight levels, planned only where the GPU computes in bfloat16, and run for
real on the tiny models on the CPU (weights stored as float8, computed in float32 and in bfloat16)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from backend.memory.estimates import estimate
from backend.memory.hardware import detect_hardware
from backend.memory.plans import LEVELS, MemoryPlan, candidate_plans, choose_plan, store_denoiser_in_fp8
from backend.models.registry import MODELS

pytestmark = pytest.mark.unit

WAN = MODELS["wan-flf2v-14b"]


def test_fp8_sits_between_group_and_sequential_offload_and_needs_less() -> None:
    assert LEVELS.index("group_offload") < LEVELS.index("fp8_group_offload") < LEVELS.index("sequential_offload")
    group = MemoryPlan("group_offload", "cuda", "bfloat16", model=WAN.key)
    fp8 = replace(group, level="fp8_group_offload")
    exact, stored = estimate(WAN, group), estimate(WAN, fp8)
    assert stored.vram_peak_gb <= exact.vram_peak_gb and stored.ram_peak_gb < exact.ram_peak_gb
    # The 16.4B transformer is ~31 GiB in bf16 and ~15 GiB in fp8: the RAM it holds drops by about that much.
    (transformer,) = [c for c in WAN.components if c.name == "transformer"]
    assert exact.ram_peak_gb - stored.ram_peak_gb == pytest.approx(transformer.params_b * 1e9 / 2**30, rel=0.15)
    assert fp8.weights == "fp8" and group.weights == "bfloat16"
    assert fp8.to_dict()["weights"] == "fp8" and MemoryPlan.from_dict(fp8.to_dict()) == fp8
    assert "float8_e4m3fn" in fp8.describe()


def test_only_gpus_that_compute_in_bfloat16_get_the_fp8_level() -> None:
    ampere = detect_hardware(vram_gb=12, ram_gb=64)
    turing = detect_hardware(vram_gb=12, ram_gb=64, compute_capability=(7, 5))
    assert "fp8_group_offload" in {p.level for p in candidate_plans(ampere, WAN)}
    assert "fp8_group_offload" not in {p.level for p in candidate_plans(turing, WAN)}
    group16 = MemoryPlan("group_offload", "cuda", "float16", model=WAN.key)
    assert group16.step_down().level == "sequential_offload"  # an fp16 GPU skips fp8
    assert replace(group16, dtype="bfloat16").step_down().level == "fp8_group_offload"


def test_a_machine_whose_ram_cannot_hold_the_bf16_weights_gets_the_fp8_level() -> None:
    """Wan 14B at group offload keeps its ~31 GB of 16-bit weights in RAM; fp8 needs ~13 GB less of it."""
    roomy, tight = detect_hardware(vram_gb=24, ram_gb=64), detect_hardware(vram_gb=24, ram_gb=36)
    assert choose_plan(roomy, WAN).level == "group_offload"
    plan = choose_plan(tight, WAN)
    assert plan.level == "fp8_group_offload" and plan.fits and plan.est_ram_gb < 36 * 0.85


@pytest.mark.tiny
@pytest.mark.parametrize("compute", ["float32", "bfloat16"])
def test_a_tiny_ltx_call_runs_with_its_transformer_stored_in_fp8(compute: str, tmp_path) -> None:
    from backend.models.loader import load_pipeline
    from backend.paths import runtime_paths

    pipe = load_pipeline(MODELS["tiny-ltx"], runtime_paths().models, dtype=getattr(torch, compute))
    pipe.set_progress_bar_config(disable=True)
    plan = MemoryPlan("fp8_group_offload", "cpu", compute, model="tiny-ltx")
    store_denoiser_in_fp8(pipe, plan)
    stored = {p.dtype for p in pipe.transformer.parameters()}
    assert torch.float8_e4m3fn in stored  # most layers keep 1 byte a weight between calls
    frames = pipe(prompt="a kite", width=64, height=64, num_frames=9, num_inference_steps=2, output_type="np",
                  generator=torch.Generator().manual_seed(0), max_sequence_length=16).frames
    assert np.isfinite(np.asarray(frames, dtype=np.float32)).all()
    assert {p.dtype for p in pipe.transformer.parameters()} == stored  # upcast per layer, stored again after

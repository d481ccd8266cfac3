"""Peak-memory and time estimates for one pipeline call under one memory plan.

Pure arithmetic on the registry's facts (parameters per component, activations at the native size):
no torch, no GPU. A call has three phases (encode, denoise, decode); the peak is the largest
"weights on the GPU during the phase + that phase's activations", plus a fixed CUDA overhead.
docs/MEMORY.md explains the model and the published figures it is calibrated against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.memory.hardware import GIB
from backend.models.registry import PHASES, MemoryFacts, ModelRef

if TYPE_CHECKING:  # pragma: no cover
    from backend.memory.hardware import HardwareProfile
    from backend.memory.plans import MemoryPlan

CUDA_OVERHEAD_GB = 0.6  # CUDA context, cuBLAS workspace, allocator fragmentation
PROCESS_RAM_GB = {"cuda": 2.0, "cpu": 1.0}  # Python + torch + diffusers (+ CUDA libraries)
LEAF_FRACTION = 0.025  # sequential offload: the largest single layer on the GPU at a time
LEAF_MIN_GB = 0.1
# How much slower than the same call with everything on the GPU (offload comparison in
# performance-anchors.md, adjusted for block-level groups with CUDA streams).
# fp8 storage adds an upcast per layer to group offload's transfers (and halves what is transferred).
LEVEL_SLOWDOWN = {"gpu": 1.0, "model_offload": 1.2, "group_offload": 1.6, "fp8_group_offload": 1.7,
                  "sequential_offload": 6.0}
FP8_LEVELS = ("fp8_group_offload",)  # levels whose denoiser weights are stored in float8 (1 byte a weight)
FORWARD_CHUNKING_SLOWDOWN = 1.1
CPU_SLOWDOWN_8_CORES = 60.0  # fp32 on an 8-core CPU versus an A100-class GPU in 16-bit
ETA_CLASSES = ((60.0, "seconds"), (15 * 60.0, "minutes"))  # otherwise "long"

_FALLBACK_FACTS = MemoryFacts(denoise_gb=1.0, decode_gb=1.0, decode_tiled_gb=1.0)


@dataclass(frozen=True)
class Workload:
    """What one model call will process: drives the activation part of the memory estimate."""

    width: int
    height: int
    frames: int = 1
    batch: int = 2  # classifier-free guidance doubles the batch


@dataclass(frozen=True)
class Estimate:
    vram_peak_gb: float
    ram_peak_gb: float  # the whole process while this model runs
    vram_resting_gb: float  # held on the GPU between calls while the model stays resident
    ram_resting_gb: float  # model weights held in RAM between calls (process baseline excluded)
    peak_phase: str


def native_workload(ref: ModelRef) -> Workload:
    return Workload(ref.width, ref.height, ref.frames, 2 if ref.cfg else 1)


def _facts(ref: ModelRef) -> MemoryFacts:
    return ref.memory or _FALLBACK_FACTS


def _bytes_per_param(dtype: str) -> int:
    return 4 if dtype == "float32" else 2


def _component_gb(ref: ModelRef, dtype: str, phase: str | None = None, *, fp8: bool = False) -> list[float]:
    """Weights (GB) of the components of ``phase`` (all when None), with the fp16 VAE upcast; ``fp8``: the
    denoiser stored in float8 (layerwise casting keeps 1 byte a weight, upcast one layer at a time)."""
    sizes = []
    for component in ref.components:
        if phase is not None and component.phase != phase:
            continue
        width = 1 if fp8 and component.phase == "denoise" else _bytes_per_param(dtype)
        size = component.params_b * 1e9 * width / GIB
        if component.phase == "decode" and _upcast(ref, dtype):
            size *= 2
        sizes.append(size)
    return sizes


def _upcast(ref: ModelRef, dtype: str) -> bool:
    return dtype == "float16" and _facts(ref).vae_upcast_fp16


def weights_gb(ref: ModelRef, dtype: str, *, fp8: bool = False) -> float:
    return sum(_component_gb(ref, dtype, fp8=fp8))


def _scales(ref: ModelRef, workload: "Workload") -> tuple[float, float, float]:
    native = native_workload(ref)
    pixels = (workload.width * workload.height) / (native.width * native.height)
    return pixels, workload.frames / max(1, native.frames), workload.batch / native.batch


def activations_gb(ref: ModelRef, plan: "MemoryPlan", workload: "Workload", phase: str) -> float:
    """Activation memory of one phase; 32-bit doubles it, the fp16-upcast VAE doubles the decode."""
    facts = _facts(ref)
    pixels, frames, batch = _scales(ref, workload)
    width = 2.0 if plan.dtype == "float32" else 1.0
    if phase == "encode":
        return facts.encode_gb * width
    if phase == "denoise":
        chunking = facts.forward_chunking_factor if plan.forward_chunking and facts.forward_chunking_factor else 1.0
        return facts.denoise_gb * pixels * frames * batch * chunking * width
    width *= 2.0 if _upcast(ref, plan.dtype) else 1.0
    if facts.decode_unit == "chunked":  # frames decoded decode_chunk_size at a time
        return facts.decode_gb * pixels * min(workload.frames, plan.decode_chunk_size) * width
    if facts.decode_unit == "sliced":  # all frames in one batch unless slicing
        return facts.decode_gb * pixels * (1 if plan.vae_slicing else workload.frames) * width
    untiled = facts.decode_gb * pixels * width
    if plan.vae_tiling and facts.decode_tiled_gb is not None:  # tiles bound the decode
        return min(untiled, facts.decode_tiled_gb * min(pixels, 1.0) * width)
    return untiled


def _gpu_weights_gb(ref: ModelRef, plan: "MemoryPlan", phase: str) -> float:
    if plan.level == "cpu":
        return 0.0
    if plan.level == "gpu":
        return weights_gb(ref, plan.dtype)
    in_phase = _component_gb(ref, plan.dtype, phase, fp8=plan.level in FP8_LEVELS)
    largest = max(in_phase, default=0.0)
    if plan.level == "model_offload":  # one whole model on the GPU at a time
        return largest
    leaf = max(LEAF_MIN_GB, LEAF_FRACTION * largest) if in_phase else 0.0
    if plan.level in ("group_offload", *FP8_LEVELS):  # the running block group plus the prefetched one
        return max(leaf, _facts(ref).group_fraction * largest)
    return leaf  # sequential_offload


def estimate(ref: ModelRef, plan: "MemoryPlan", workload: "Workload | None" = None) -> Estimate:
    """Peak VRAM and RAM of one call of ``ref`` under ``plan`` (native workload when None)."""
    workload = workload or native_workload(ref)
    phases = {phase: _gpu_weights_gb(ref, plan, phase) + activations_gb(ref, plan, workload, phase)
              for phase in PHASES}
    peak_phase = max(phases, key=phases.__getitem__)
    weights = weights_gb(ref, plan.dtype, fp8=plan.level in FP8_LEVELS)
    if plan.device == "cpu":
        return Estimate(0.0, PROCESS_RAM_GB["cpu"] + weights + phases[peak_phase], 0.0, weights, peak_phase)
    # from_pretrained loads every component into RAM before placement; offload levels keep them there.
    on_gpu_at_rest = weights if plan.level == "gpu" else 0.0
    return Estimate(
        vram_peak_gb=phases[peak_phase] + CUDA_OVERHEAD_GB,
        ram_peak_gb=PROCESS_RAM_GB["cuda"] + weights,
        vram_resting_gb=on_gpu_at_rest,
        ram_resting_gb=weights - on_gpu_at_rest,
        peak_phase=peak_phase,
    )


def gpu_speed_factor(hardware: "HardwareProfile") -> float:
    """Seconds relative to an A100, guessed from the GPU's generation and size (no benchmark runs)."""
    capability = hardware.compute_capability or (0, 0)
    vram = hardware.vram_total_gb
    if capability >= (9, 0) or vram >= 70:
        return 0.6  # H100 class
    for floor, factor in ((40, 1.0), (20, 1.2), (14, 2.0), (10, 2.5)):
        if vram >= floor:
            return factor
    return 4.0  # 6-8 GB laptop GPUs


def call_seconds(
    ref: ModelRef, plan: "MemoryPlan", workload: "Workload", steps: int, hardware: "HardwareProfile"
) -> float:
    """Rough wall time of one call: denoising steps plus one decode, scaled by level and machine."""
    facts = _facts(ref)
    pixels, frames, batch = _scales(ref, workload)
    work = facts.step_seconds * steps * pixels * frames * batch + facts.decode_seconds * pixels * frames
    if plan.forward_chunking:
        work *= FORWARD_CHUNKING_SLOWDOWN
    if plan.device == "cpu":
        return work * CPU_SLOWDOWN_8_CORES * 8 / max(1, hardware.cpu_count)
    return work * LEVEL_SLOWDOWN.get(plan.level, 1.0) * gpu_speed_factor(hardware)


def eta_class(seconds: float) -> str:
    for limit, name in ETA_CLASSES:
        if seconds < limit:
            return name
    return "long"

"""Memory plans: the ONE place that decides dtype, placement/offload, VAE tiling and chunking.

A plan is chosen per stage and model from an estimate of peak memory (``estimates.py``), recorded in
the job record, and applied to a pipeline by ``apply_plan`` — each level maps to exactly one diffusers
setting. Where even the lowest level cannot fit the requested work, ``fit_plan`` caps the frames or
resolution and says so in the plan.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from backend.memory.estimates import FP8_LEVELS, Estimate, Workload, estimate, native_workload
from backend.memory.hardware import HardwareProfile
from backend.models.registry import MODELS, ModelRef

log = logging.getLogger(__name__)

# Levels from fastest/most memory to slowest/least memory. fp8_group_offload is group offload with the
# denoiser's weights stored in float8 and upcast layer by layer (diffusers' layerwise casting): it halves
# the denoiser in RAM and per transferred group, at a small cost in precision, so it comes only after the
# levels that keep the weights exact, and only on GPUs that compute in bfloat16 (Ampere and newer).
LEVELS = ("gpu", "model_offload", "group_offload", "fp8_group_offload", "sequential_offload")
FP8_STORAGE = "float8_e4m3fn"
VRAM_HEADROOM = 0.92  # plan to use at most this share of the usable VRAM
RAM_HEADROOM = 0.85
DEFAULT_DECODE_CHUNK = 8  # SVD frames decoded at once when memory allows
RELIEVED_DECODE_CHUNK = 2
ATTENTION = "sdpa"  # PyTorch scaled_dot_product_attention (diffusers' default "native" backend)


@dataclass(frozen=True)
class MemoryPlan:
    level: str  # "cpu" or one of LEVELS
    device: str  # "cpu" | "cuda"
    dtype: str  # "float32" | "bfloat16" | "float16"
    vae_tiling: bool = False
    vae_slicing: bool = False
    decode_chunk_size: int = DEFAULT_DECODE_CHUNK  # SVD frames decoded at once
    forward_chunking: bool = False  # unet.enable_forward_chunking() (SVD)
    reason: str = ""
    model: str = ""  # registry key the plan was made for
    attention: str = ATTENTION
    est_vram_gb: float = 0.0  # estimated peak VRAM of one call
    est_ram_gb: float = 0.0  # estimated peak RAM of the process during one call
    fits: bool = True  # False: even this plan is estimated not to fit; it is tried anyway
    # Set when the planner capped the work so that it fits; stages generate at most this much.
    cap_width: int | None = None
    cap_height: int | None = None
    cap_frames: int | None = None

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    @property
    def capped(self) -> bool:
        return self.cap_width is not None or self.cap_frames is not None

    def key(self) -> tuple:
        """Identity of the loaded pipeline state (two plans with the same key can share it)."""
        return (self.level, self.device, self.dtype)

    def to_dict(self) -> dict:
        return {**asdict(self), "weights": self.weights}  # the record says when weights were stored in fp8

    @classmethod
    def from_dict(cls, data: dict) -> "MemoryPlan":
        """A plan from its recorded form (derived keys such as ``weights`` are left out)."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    def describe(self) -> str:
        """``model_offload + VAE tiling + forward chunking (bfloat16)``: the settings in one line."""
        knobs = [self.level]
        if self.level in FP8_LEVELS:
            knobs.append(f"denoiser weights in {FP8_STORAGE}")
        if self.vae_tiling:
            knobs.append("VAE tiling")
        if self.vae_slicing and not self.vae_tiling:
            knobs.append("VAE slicing")
        if self.forward_chunking:
            knobs.append("forward chunking")
        if _decode_unit(self.model) == "chunked":
            knobs.append(f"decode chunk {self.decode_chunk_size}")
        return f"{' + '.join(knobs)} ({self.dtype})"

    @property
    def weights(self) -> str:
        """How the denoiser's weights are kept: in the plan's dtype, or stored in fp8 and upcast per layer."""
        return "fp8" if self.level in FP8_LEVELS else self.dtype

    def step_down(self) -> "MemoryPlan | None":
        """The next level after an out-of-memory error (all reliefs on), or None at the bottom."""
        if self.device == "cpu" or self.level not in LEVELS:
            return None
        lower_levels = [level for level in LEVELS[LEVELS.index(self.level) + 1:]
                        if level not in FP8_LEVELS or self.dtype == "bfloat16"]
        if not lower_levels:
            return None
        lower = _relieved(replace(self, level=lower_levels[0]))
        return _reestimated(lower, f"stepped down after running out of memory at {self.level}")

    def with_tiled_decode(self) -> "MemoryPlan | None":
        """The same level with a lighter VAE decode (tiling, slicing, smaller chunks), or None if none is left."""
        unit = _decode_unit(self.model)
        lighter = replace(
            self,
            vae_tiling=self.vae_tiling or unit in ("tiled", None),
            vae_slicing=self.vae_slicing or unit in ("tiled", "sliced", None),
            decode_chunk_size=max(1, self.decode_chunk_size // 2) if unit in ("chunked", None)
            else self.decode_chunk_size,
        )
        if lighter == self:
            return None
        return _reestimated(lighter, f"VAE decode ran out of memory at {self.level}: lighter decode")


# --- choosing ---------------------------------------------------------------------------------------


def vram_budget_gb(hardware: HardwareProfile) -> float:
    return hardware.usable_vram_gb * VRAM_HEADROOM


def ram_budget_gb(hardware: HardwareProfile) -> float:
    return hardware.ram_total_gb * RAM_HEADROOM


def plan_dtype(hardware: HardwareProfile, ref: ModelRef) -> str:
    """bf16 on Ampere and newer, fp16 before; fp32 on the CPU (16-bit is slow there)."""
    if ref.is_tiny or not hardware.has_cuda:
        return "float32"
    return "bfloat16" if hardware.supports_bf16 else "float16"


def candidate_plans(hardware: HardwareProfile, ref: ModelRef) -> list[MemoryPlan]:
    """Every plan worth trying for ``ref`` on this machine, fastest first."""
    dtype = plan_dtype(hardware, ref)
    if ref.is_tiny or not hardware.has_cuda:
        levels, device = ("cpu",), "cpu"
    else:
        levels, device = LEVELS, "cuda"
        if not hardware.supports_bf16:
            levels = tuple(level for level in LEVELS if level not in FP8_LEVELS)
    plans: list[MemoryPlan] = []
    for level in levels:
        plain = MemoryPlan(level=level, device=device, dtype=dtype, model=ref.key)
        relieved = _relieved(plain)
        plans += [plain] if relieved == plain else [plain, relieved]
    return plans


def choose_plan(hardware: HardwareProfile, model: ModelRef | str, workload: Workload | None = None) -> MemoryPlan:
    """The fastest plan whose estimated peak fits; the leanest (``fits=False``) when none does."""
    ref = _as_ref(model)
    workload = workload or native_workload(ref)
    candidates = candidate_plans(hardware, ref)
    for plan in candidates:
        est = estimate(ref, plan, workload)
        if _fits(hardware, plan, est):
            return _annotated(plan, est, _reason(hardware, ref, plan, est))
    plan = candidates[-1]
    est = estimate(ref, plan, workload)
    return replace(_annotated(plan, est, _shortfall(hardware, ref, plan, est, workload)), fits=False)


def fit_plan(hardware: HardwareProfile, model: ModelRef | str, workload: Workload | None = None) -> MemoryPlan:
    """Like ``choose_plan``, but caps frames, then resolution, when even the lowest level cannot fit."""
    ref = _as_ref(model)
    workload = workload or native_workload(ref)
    plan = choose_plan(hardware, ref, workload)
    if plan.fits:
        return plan
    smaller_ones = cap_candidates(ref, workload)
    for smaller in smaller_ones:
        capped = choose_plan(hardware, ref, smaller)
        if capped.fits:
            note = (f"capped to {smaller.width}x{smaller.height}, {smaller.frames} frame(s) per call: "
                    f"{workload.width}x{workload.height}, {workload.frames} frame(s) cannot fit even at "
                    f"{plan.level}; {capped.reason}")
            log.info("%s: %s", ref.key, note)
            return replace(capped, cap_width=smaller.width, cap_height=smaller.height, cap_frames=smaller.frames,
                           reason=note)
    if smaller_ones:
        least = smaller_ones[-1]
        plan = replace(plan, reason=f"{plan.reason}; nor does {least.width}x{least.height}, {least.frames} frame(s)")
    return plan


def min_vram_by_level(ref: ModelRef, dtype: str = "bfloat16") -> dict[str, float]:
    """Least VRAM (GB) each level needs for the native workload, reliefs on; empty for the CPU-only tiny set."""
    if ref.is_tiny:
        return {}
    return {level: round(estimate(ref, _relieved(MemoryPlan(level, "cuda", dtype, model=ref.key))).vram_peak_gb, 1)
            for level in LEVELS}


def cap_candidates(ref: ModelRef, workload: Workload) -> list[Workload]:
    """Smaller workloads the model supports, fewer frames before fewer pixels, best first."""
    frames = [f for f in ref.frame_options if f <= workload.frames] or [workload.frames]
    sizes = [(workload.width, workload.height)] + [
        (_multiple_of_64(workload.width * scale), _multiple_of_64(workload.height * scale))
        for scale in ref.scale_options
    ]
    out = [Workload(w, h, f, workload.batch) for (w, h) in dict.fromkeys(sizes) for f in frames]
    return [w for w in out if w != workload]


def _multiple_of_64(pixels: float) -> int:
    return max(64, int(round(pixels / 64)) * 64)  # latents divide by 8, UNets downsample 3 more times


# --- helpers ----------------------------------------------------------------------------------------


def _as_ref(model: ModelRef | str) -> ModelRef:
    if isinstance(model, ModelRef):
        return model
    try:
        return MODELS[model]
    except KeyError:
        raise ValueError(f"No memory facts for unknown model '{model}'.") from None


def _decode_unit(model_key: str) -> str | None:
    ref = MODELS.get(model_key)
    return ref.memory.decode_unit if ref is not None and ref.memory is not None else None


def _relieved(plan: MemoryPlan) -> MemoryPlan:
    """Every memory relief the model supports switched on, at the plan's level."""
    ref = MODELS.get(plan.model)
    facts = ref.memory if ref is not None else None
    unit = facts.decode_unit if facts is not None else None
    return replace(
        plan,
        vae_tiling=unit in ("tiled", None),
        vae_slicing=unit in ("tiled", "sliced", None),
        decode_chunk_size=RELIEVED_DECODE_CHUNK if unit in ("chunked", None) else plan.decode_chunk_size,
        forward_chunking=facts is None or facts.forward_chunking_factor is not None,
    )


def _fits(hardware: HardwareProfile, plan: MemoryPlan, est: Estimate) -> bool:
    """Within the VRAM budget and, since offload levels keep the weights in RAM, within the RAM budget too."""
    if plan.device == "cpu":
        return est.ram_peak_gb <= ram_budget_gb(hardware)
    return est.vram_peak_gb <= vram_budget_gb(hardware) and est.ram_peak_gb <= ram_budget_gb(hardware)


def _annotated(plan: MemoryPlan, est: Estimate, reason: str) -> MemoryPlan:
    return replace(plan, est_vram_gb=round(est.vram_peak_gb, 2), est_ram_gb=round(est.ram_peak_gb, 2),
                   reason=reason)


def _reason(hardware: HardwareProfile, ref: ModelRef, plan: MemoryPlan, est: Estimate) -> str:
    if ref.is_tiny:
        return "tiny test model: always on the CPU in float32"
    if plan.device == "cpu":
        why = hardware.note or "no CUDA GPU"
        return f"{why}: CPU in float32, estimated {est.ram_peak_gb:.1f} GB RAM"
    return (f"estimated peak {est.vram_peak_gb:.1f} GB of {vram_budget_gb(hardware):.1f} GB usable VRAM "
            f"({est.peak_phase})")


def _shortfall(hardware: HardwareProfile, ref: ModelRef, plan: MemoryPlan, est: Estimate, workload: Workload) -> str:
    size = f"{workload.width}x{workload.height}, {workload.frames} frame(s)"
    if plan.device == "cpu":
        return (f"does not fit: {size} needs about {est.ram_peak_gb:.1f} GB RAM on the CPU, "
                f"{ram_budget_gb(hardware):.1f} GB usable")
    return (f"does not fit: {size} needs about {est.vram_peak_gb:.1f} GB VRAM even at {plan.level}, "
            f"{vram_budget_gb(hardware):.1f} GB usable")


def plan_workload(ref: ModelRef, plan: MemoryPlan) -> Workload:
    """The work a plan was made for: the model's native size within the plan's caps."""
    native = native_workload(ref)
    return Workload(plan.cap_width or native.width, plan.cap_height or native.height,
                    plan.cap_frames or native.frames, native.batch)


def _reestimated(plan: MemoryPlan, reason: str) -> MemoryPlan:
    """A plan derived after an OOM: fresh estimates for its (capped or native) workload."""
    ref = MODELS.get(plan.model)
    if ref is None:
        return replace(plan, reason=reason)
    return _annotated(plan, estimate(ref, plan, plan_workload(ref, plan)), reason)


# --- applying ---------------------------------------------------------------------------------------


def apply_plan(pipe: Any, plan: MemoryPlan) -> Any:
    """Place ``pipe`` according to ``plan``: exactly one diffusers placement call per level."""
    if plan.level == "cpu":
        pipe.to("cpu")
    elif plan.level == "gpu":
        pipe.to("cuda")
    elif plan.level == "model_offload":
        pipe.enable_model_cpu_offload()
    elif plan.level in ("group_offload", *FP8_LEVELS):
        import torch

        if plan.level in FP8_LEVELS:  # before the offload hooks, so groups move the fp8 weights
            store_denoiser_in_fp8(pipe, plan)
        pipe.enable_group_offload(onload_device=torch.device("cuda"), offload_type="block_level",
                                  num_blocks_per_group=1, use_stream=True)
    elif plan.level == "sequential_offload":
        pipe.enable_sequential_cpu_offload()
    else:
        raise ValueError(f"unknown memory level {plan.level}")
    return apply_component_settings(pipe, plan)


def store_denoiser_in_fp8(pipe: Any, plan: MemoryPlan) -> None:
    """Keep the UNet/transformer's weights in float8 and compute in the plan's dtype, layer by layer.

    diffusers' layerwise casting leaves the layers its models mark as precision-sensitive (patch
    embeddings, norms, positional embeddings) in the compute dtype.
    """
    import torch

    for name in ("transformer", "unet"):
        denoiser = getattr(pipe, name, None)
        if denoiser is not None and hasattr(denoiser, "enable_layerwise_casting"):
            denoiser.enable_layerwise_casting(storage_dtype=getattr(torch, FP8_STORAGE),
                                              compute_dtype=plan.torch_dtype)


def apply_component_settings(pipe: Any, plan: MemoryPlan) -> Any:
    """VAE tiling/slicing and forward chunking, switched on or off to match ``plan`` exactly.

    Safe to call again on a resident pipeline: a plan without tiling really turns tiling off.
    """
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        # Some VAEs (SVD's temporal decoder) have enable_tiling() but raise in it: check the flag.
        if hasattr(vae, "use_tiling"):
            vae.enable_tiling() if plan.vae_tiling else vae.disable_tiling()
        if hasattr(vae, "use_slicing"):
            vae.enable_slicing() if plan.vae_slicing else vae.disable_slicing()
    for name in ("unet", "transformer"):
        denoiser = getattr(pipe, name, None)
        if denoiser is not None and hasattr(denoiser, "enable_forward_chunking"):
            _set_forward_chunking(denoiser, plan.forward_chunking)
    return pipe


def _set_forward_chunking(model: Any, on: bool) -> None:
    if on:
        model.enable_forward_chunking()
        return
    for module in model.modules():  # not every model class has disable_forward_chunking()
        if hasattr(module, "set_chunk_feed_forward"):
            module.set_chunk_feed_forward(chunk_size=None, dim=0)

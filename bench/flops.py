"""What a run costs, and on what: FLOPs and MFU, time per step, peak memory, the device (budgets: bench.budgets).

FLOPs are counted, not estimated: one denoiser forward runs under ``torch.utils.flop_counter.FlopCounterMode``
(matrix products, convolutions and attention; element-wise work is not counted, as is usual for MFU).
The forward is either the one the pipeline really made (captured by ``DenoiserProbe``; on a GPU replayed on a
weightless ``meta`` twin) or, for ``--flops-only``, a full-size denoiser on the ``meta`` device with synthetic
inputs (``bench.synthetic``), which needs neither weights nor a GPU. Per step means every call of a step:
Wan and SkyReels run CFG as two calls of batch 1, the others as one call of batch 2.

MFU = FLOPs of a run / (seconds × peak). Peaks are the vendors' dense bf16 tensor-core figures; where the
device is not in the table (a CPU, say) the peak is *measured* with a large matrix product and labelled so.
Time is taken around the whole call with a device sync, and at every step end for seconds per step.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from bench.pipeline import Bench

GIB = 1024**3

# Dense bf16 tensor TFLOP/s (fp32 accumulate), from the vendors' datasheets. Most specific names first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    (r"H100.*PCIE", 756.0),
    (r"H100.*NVL", 835.0),
    (r"GH200|H200", 989.4),
    (r"H100", 989.4),  # SXM ("H100 80GB HBM3")
    (r"A100", 312.0),
    (r"L40S", 362.05),
    (r"L40\b", 181.0),
    (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0),
    (r"RTX 4090", 165.2),
    (r"RTX 3090", 71.0),
    (r"RTX A6000", 154.8),
)


@dataclass(frozen=True)
class Peak:
    tflops: float
    source: str  # "spec: ..." or "measured: ..."


def spec_peak(device_name: str) -> Peak | None:
    """The datasheet peak for a GPU name as CUDA reports it, or None when it is not in the table."""
    name = device_name.upper()
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, name):
            return Peak(tflops, f"spec: dense bf16 tensor peak of {pattern.replace(chr(92) + 'b', '')}")
    return None


def measured_peak(device: str, dtype: Any, size: int = 2048, seconds: float = 0.5) -> Peak:
    """Best achieved TFLOP/s of a square matrix product: the practical ceiling where no spec is known."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    for _ in range(50):
        synchronize(device)
        started = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - started)
        if time.perf_counter() > deadline:
            break
    tflops = 2 * size**3 / best / 1e12
    return Peak(round(tflops, 4), f"measured: best {size}x{size} {str(dtype).replace('torch.', '')} matmul on {device}")


def device_peak(device: str, dtype: Any, override_tflops: float | None = None) -> Peak:
    if override_tflops:
        return Peak(override_tflops, "given with --peak-tflops")
    if device == "cuda":
        import torch

        found = spec_peak(torch.cuda.get_device_name())
        if found is not None:
            return found
    return measured_peak(device, dtype)


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of everything ``fn`` runs (no autograd)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return int(counter.get_total_flops())


def mfu(flops: float | None, seconds: float | None, peak: Peak) -> float | None:
    if not flops or not seconds or seconds <= 0 or peak.tflops <= 0:
        return None
    return round(flops / (seconds * peak.tflops * 1e12), 5)


class DenoiserProbe:
    """Counts a denoiser's forward calls and keeps the first call's arguments, to count its FLOPs later.

    A plain forward pre-hook: it sees the call as the pipeline makes it (CFG batch included), and it
    keeps working under offload hooks and regional compilation.
    """

    def __init__(self, denoiser: Any) -> None:
        self.denoiser = denoiser
        self.calls = 0
        self.last_shape: tuple[int, ...] = ()  # input shape of the latest call (latents, CFG batch first)
        self._args: tuple | None = None
        self._kwargs: dict | None = None
        self._handle = denoiser.register_forward_pre_hook(self._on_call, with_kwargs=True)

    def _on_call(self, module: Any, args: tuple, kwargs: dict) -> None:
        self.calls += 1
        first = args[0] if args else next(iter(kwargs.values()), None)
        self.last_shape = tuple(first.shape) if hasattr(first, "shape") else ()
        if self._args is None:
            self._args, self._kwargs = args, dict(kwargs)

    def reset(self) -> None:
        self.calls = 0

    @property
    def batch(self) -> int | None:
        """Batch of the captured call: 2 with classifier-free guidance."""
        return self.last_shape[0] if self.last_shape else None

    def flops_per_call(self, on_meta: bool = False) -> int | None:
        """FLOPs of one forward with the captured arguments (None before any call).

        ``on_meta``: count on a weightless twin on the ``meta`` device instead of running the forward again
        (on a GPU a Wan 14B call takes ~15 s); the count is the same, it depends on shapes only.
        """
        if self._args is None:
            return None
        args, kwargs, model = self._args, self._kwargs or {}, self.denoiser
        if on_meta:
            import torch

            with torch.device("meta"):
                model = type(model).from_config(model.config).to("meta", model.dtype)  # legacy CPU tensors too
            args, kwargs = _on_meta(args), _on_meta(kwargs)
        calls = self.calls
        flops = count_flops(lambda: model(*args, **kwargs))
        self.calls = calls  # the counting forward is not part of any run
        return flops

    def close(self) -> None:
        self._handle.remove()
        self._args = self._kwargs = None


def _on_meta(value: Any) -> Any:
    """Tensors (also inside tuples, lists and dicts) as empty ``meta`` tensors of the same shape and dtype."""
    import torch

    if isinstance(value, torch.Tensor):
        return torch.empty_like(value, device="meta")
    if isinstance(value, (tuple, list)):
        return type(value)(_on_meta(v) for v in value)
    if isinstance(value, dict):
        return {k: _on_meta(v) for k, v in value.items()}
    return value


def full_size_flops(models_root: Any) -> dict[str, Any]:
    """Full-size denoisers on the meta device (no weights, no GPU): parameters and FLOPs per CFG step and run."""
    import torch

    from bench.configs import STAGES, build_full, denoiser_of

    peak = dict(PEAK_BF16_TFLOPS)["H100"]
    rows = []
    for shape in STAGES["full"].values():
        denoiser = denoiser_of(build_full(shape.model_key, models_root, device="meta", dtype=torch.bfloat16))
        flops = synthetic_flops(shape, denoiser)
        rows.append({"stage": shape.stage, "model": shape.model_key, "steps": shape.steps,
                     "denoiser_params_b": round(sum(p.numel() for p in denoiser.parameters()) / 1e9, 3),
                     "shape": f"{shape.width}x{shape.height}x{shape.frames}", "tflops_per_step": round(flops / 1e12, 3),
                     "tflops_per_run": round(flops * shape.steps / 1e12, 1),
                     "h100_spec_limit_s": round(flops * shape.steps / (peak * 1e12), 2)})
    return {"schema": "bench.pipeline.flops/1", "rows": rows,
            "note": "one denoising step with CFG (one call of batch 2; Wan and SkyReels: two calls of batch 1; "
                    "the step-distilled LTX 13B: one call of batch 1, no CFG), "
                    "counted by torch.utils.flop_counter on the meta device (matmul, conv, attention); "
                    "h100_spec_limit_s = FLOPs per run / 989.4 TFLOP/s"}


def synthetic_flops(stage: Any, denoiser: Any) -> int:
    """FLOPs of one denoising step (CFG included) of ``denoiser`` with synthetic inputs on its own device."""
    from bench.synthetic import calls_per_step, denoiser_inputs

    args, kwargs = denoiser_inputs(stage, denoiser, device=str(denoiser.device))
    return count_flops(lambda: denoiser(*args, **kwargs)) * calls_per_step(stage)


# ---- the device and software a report was measured on -------------------------------------------------


def header(bench: "Bench") -> dict[str, Any]:
    """Date, command, device, peak and software versions: what makes a result comparable."""
    import platform
    import shlex
    from datetime import datetime, timezone

    import torch

    from backend.jobs.outputs import software_versions

    name = torch.cuda.get_device_name() if bench.device == "cuda" else (platform.processor() or platform.machine())
    software = software_versions()
    if torch.version.cuda:
        software.update(cuda=torch.version.cuda, cudnn=str(torch.backends.cudnn.version()))
    tiny = bench.size == "tiny"
    return {
        "schema": "bench.pipeline/1", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench.pipeline " + " ".join(shlex.quote(a) for a in bench.args.argv),
        "size": bench.size, "weights": "tiny test set" if tiny else bench.args.weights,
        "device": {"name": name, "kind": bench.device, "dtype": str(bench.dtype).replace("torch.", ""),
                   "peak_tflops": bench.peak.tflops, "peak_source": bench.peak.source,
                   "hardware": bench.hardware.summary()},
        "software": software,
        "settings": {"repeat": bench.args.repeat, "warmup": bench.args.warmup, "max_steps": bench.args.max_steps,
                     "budget_steps": bench.args.budget_steps, "torch_threads": torch.get_num_threads()},
        "note": ("tiny test models on the CPU: output is noise and the timings prove the plumbing only"
                 if tiny else "full-size architectures with random weights: timing and memory are the real cost"),
    }


# ---- time and memory of one call ------------------------------------------------------------------


class StepClock:
    """Timestamps at the end of each denoising step (after a device sync), for seconds per step."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.marks: list[float] = []

    def mark(self) -> None:
        synchronize(self.device)
        self.marks.append(time.perf_counter())

    def callback(self, pipe: Any, step: int, timestep: Any, kwargs: dict) -> dict:
        """A diffusers ``callback_on_step_end`` (the baseline's only addition to the plain call)."""
        self.mark()
        return kwargs

    def per_step(self) -> float | None:
        if len(self.marks) < 2:
            return None
        return (self.marks[-1] - self.marks[0]) / (len(self.marks) - 1)


@dataclass
class Timed:
    """One measured call. ``seconds`` is scaled to ``steps`` when only ``steps_run`` were run."""

    seconds: float
    seconds_measured: float
    steps: int
    steps_run: int
    seconds_per_step: float | None
    peak_vram_gb: float | None
    denoiser_calls: int
    plan: str | None = None
    flops_per_run: float | None = None
    mfu: float | None = None
    mfu_denoise: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, seconds: float, clock: StepClock | None, *, steps: int, steps_run: int, calls: int,
           peak_gb: float | None, plan: str | None = None) -> "Timed":
        per_step = clock.per_step() if clock is not None else None
        scaled = seconds
        if steps_run < steps and per_step is not None:
            scaled = seconds + (steps - steps_run) * per_step  # the missing steps cost what the run's steps did
        return cls(round(scaled, 4), round(seconds, 4), steps, steps_run,
                   round(per_step, 5) if per_step is not None else None,
                   round(peak_gb, 3) if peak_gb is not None else None, calls, plan)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("extra"))
        if self.steps_run < self.steps:
            data["scaled"] = f"ran {self.steps_run} of {self.steps} steps; seconds scaled by seconds_per_step"
        return data


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None where either is missing (never inf or nan: the report is JSON)."""
    if a is None or b is None or b <= 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return round(a / b, 4)


def peak_vram_gb(device: str) -> float | None:
    if device != "cuda":
        return None  # CPU runs report no VRAM (RAM peaks are not attributable per stage)
    import torch

    return torch.cuda.max_memory_allocated() / GIB


def reset_peak(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()

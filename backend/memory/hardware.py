"""What the machine has: GPU (via NVML, then torch), VRAM, RAM, CPUs.

No torch.cuda call happens at import time, so the backend imports on machines without a GPU. NVML is
asked first because it reads the driver without creating a CUDA context; torch adds what its caching
allocator holds but does not use (ComfyUI's ``get_free_memory`` counts that as free too).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict, dataclass, replace

import psutil

log = logging.getLogger(__name__)

GIB = 1024**3
RESERVE_ENV = "STUDIO_VRAM_RESERVE_GB"  # VRAM to leave to other programs that share the GPU
SIMULATED_CAPABILITY = (8, 9)  # a simulated GPU is an Ada card unless told otherwise


@dataclass(frozen=True)
class HardwareProfile:
    gpu_name: str | None  # None = no usable CUDA GPU
    compute_capability: tuple[int, int] | None
    vram_total_gb: float
    vram_free_gb: float
    ram_total_gb: float
    ram_free_gb: float
    cpu_count: int
    simulated: bool = False  # True when --vram-gb/--ram-gb overrode the detected values
    reserve_gb: float = 0.0  # VRAM the user keeps for other programs
    source: str = "none"  # "nvml", "torch", "simulated" or "none"
    note: str = ""  # why a GPU that exists is not used, for the UI and diagnostics

    @property
    def has_cuda(self) -> bool:
        return self.gpu_name is not None

    @property
    def supports_bf16(self) -> bool:
        return self.compute_capability is not None and self.compute_capability >= (8, 0)

    @property
    def usable_vram_gb(self) -> float:
        """Free VRAM minus the user's reserve: what the studio may plan with."""
        return max(0.0, self.vram_free_gb - self.reserve_gb) if self.has_cuda else 0.0

    def summary(self) -> str:
        ram = f"{self.ram_total_gb:.0f} GB RAM, {self.cpu_count} CPUs"
        sim = " (simulated)" if self.simulated else ""
        if not self.has_cuda:
            reason = f" ({self.note})" if self.note else ""
            return f"CPU only{reason}, {ram}{sim}"
        cc = ".".join(map(str, self.compute_capability)) if self.compute_capability else "?"
        reserve = f", {self.reserve_gb:g} GB reserved for others" if self.reserve_gb else ""
        return (f"{self.gpu_name} (compute {cc}), {self.vram_free_gb:.1f} of {self.vram_total_gb:.1f} GB VRAM "
                f"free{reserve}, {ram}{sim}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Gpu:
    name: str
    capability: tuple[int, int] | None
    total_gb: float
    free_gb: float
    source: str


def refreshed(profile: HardwareProfile) -> HardwareProfile:
    """``profile`` with free VRAM and RAM read again now (another program may have taken some since).

    A simulated machine is what it was told to be; without a GPU only RAM is read again.
    """
    if profile.simulated:
        return profile
    mem = psutil.virtual_memory()
    profile = replace(profile, ram_free_gb=mem.available / GIB)
    if not profile.has_cuda:
        return profile
    gpu, _ = _detect_gpu()
    return replace(profile, vram_free_gb=gpu.free_gb) if gpu is not None else profile


def detect_hardware(
    vram_gb: float | None = None,
    ram_gb: float | None = None,
    *,
    reserve_gb: float | None = None,
    compute_capability: tuple[int, int] | None = None,
) -> HardwareProfile:
    """Detect the machine; ``vram_gb``/``ram_gb`` simulate another one (tests, shared GPUs).

    ``vram_gb=0`` simulates a machine without a GPU. ``reserve_gb`` (default: $STUDIO_VRAM_RESERVE_GB)
    is VRAM left to other programs. ``compute_capability`` overrides the GPU generation, e.g. (7, 5).
    """
    mem = psutil.virtual_memory()
    ram_total, ram_free = mem.total / GIB, mem.available / GIB
    reserve = _reserve_from_env() if reserve_gb is None else max(0.0, float(reserve_gb))
    simulated = vram_gb is not None or ram_gb is not None
    note = ""
    if vram_gb is not None:
        gpu = _simulated_gpu(float(vram_gb), compute_capability)
    else:
        gpu, note = _detect_gpu()
        if gpu is not None and compute_capability is not None:
            gpu = _Gpu(gpu.name, compute_capability, gpu.total_gb, gpu.free_gb, gpu.source)
    if ram_gb is not None:
        ram_total = ram_free = float(ram_gb)
    cpus = os.cpu_count() or 1
    if gpu is None:
        return HardwareProfile(None, None, 0.0, 0.0, ram_total, ram_free, cpus, simulated, 0.0,
                               "simulated" if vram_gb is not None else "none", note)
    return HardwareProfile(gpu.name, gpu.capability, gpu.total_gb, gpu.free_gb, ram_total, ram_free, cpus,
                           simulated, reserve, gpu.source, note)


def _reserve_from_env() -> float:
    raw = os.environ.get(RESERVE_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        return max(0.0, float(raw))
    except ValueError:
        log.warning("ignoring %s=%r: not a number of GB", RESERVE_ENV, raw)
        return 0.0


def _simulated_gpu(vram_gb: float, capability: tuple[int, int] | None) -> _Gpu | None:
    if vram_gb <= 0:
        return None
    return _Gpu(f"simulated {vram_gb:g} GB GPU", capability or SIMULATED_CAPABILITY, vram_gb, vram_gb, "simulated")


def _detect_gpu() -> tuple[_Gpu | None, str]:
    """The GPU the studio would run on, and a note when one exists but cannot be used."""
    answered, gpu = _nvml_gpu()
    if not answered:  # no NVML library at all: torch is the only other witness
        return _torch_gpu(), ""
    if gpu is None:  # the driver answered (or is missing): no GPU, and torch need not be imported
        return None, ""
    if not _torch_has_cuda():
        return None, f"{gpu.name} found, but this PyTorch build has no CUDA support"
    return _Gpu(gpu.name, gpu.capability, gpu.total_gb, gpu.free_gb + _torch_reusable_gb(), gpu.source), ""


def _nvml_gpu() -> tuple[bool, _Gpu | None]:
    """(whether NVML could be asked, the GPU it reports)."""
    try:
        import pynvml
    except ImportError:
        return False, None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # no driver (NVMLError_LibraryNotFound), driver/library mismatch, ...
        log.debug("NVML unavailable: %s", exc)
        return True, None
    try:
        handle = _nvml_handle(pynvml)
        if handle is None:
            return True, None
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            capability = tuple(pynvml.nvmlDeviceGetCudaComputeCapability(handle))
        except pynvml.NVMLError:  # NotSupported on some drivers: torch can still tell
            capability = _torch_capability()
        return True, _Gpu(name, capability, memory.total / GIB, memory.free / GIB, "nvml")  # type: ignore[arg-type]
    except pynvml.NVMLError as exc:
        log.warning("NVML could not read the GPU: %s", exc)
        return True, None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _nvml_handle(pynvml) -> object | None:
    """The NVML handle of the first device CUDA will use (CUDA_VISIBLE_DEVICES may renumber them)."""
    if pynvml.nvmlDeviceGetCount() == 0:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return pynvml.nvmlDeviceGetHandleByIndex(0)
    first = visible.split(",")[0].strip()
    if not first or first == "-1":
        return None  # the user hid every GPU
    if first.isdigit():
        return pynvml.nvmlDeviceGetHandleByIndex(int(first))
    return pynvml.nvmlDeviceGetHandleByUUID(first)


def _torch_has_cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return torch.version.cuda is not None and torch.cuda.is_available()


def _torch_reusable_gb() -> float:
    """VRAM torch reserved but is not using; zero when torch has not touched CUDA yet."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return 0.0
    index = torch.cuda.current_device()
    return (torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)) / GIB


def _torch_capability() -> tuple[int, int] | None:
    if not _torch_has_cuda():
        return None
    import torch

    return tuple(torch.cuda.get_device_capability())  # type: ignore[return-value]


def _torch_gpu() -> _Gpu | None:
    """Without NVML (e.g. some containers) ask torch; this creates a CUDA context."""
    if not _torch_has_cuda():
        return None
    import torch

    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    driver_free, total = torch.cuda.mem_get_info(index)
    reusable = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
    return _Gpu(props.name, (props.major, props.minor), total / GIB, (driver_free + reusable) / GIB, "torch")

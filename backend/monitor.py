"""Live system readings for the UI: GPU (NVML), CPU, RAM and the disks the studio writes to.

No torch here: NVML answers in microseconds without creating a CUDA context, and a machine with
no NVIDIA driver still gets CPU, RAM and disk readings (``gpu_note`` says why there is no GPU).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

GIB = 1024**3
NVML_RETRY_S = 60.0  # after a failed NVML start, don't retry on every poll


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    vram_used_gb: float
    vram_total_gb: float
    utilisation_pct: int | None  # None where the driver does not report it
    temperature_c: int | None

    @property
    def vram_free_gb(self) -> float:
        return max(0.0, self.vram_total_gb - self.vram_used_gb)


@dataclass(frozen=True)
class DiskReading:
    label: str  # what the studio keeps there, e.g. "models"
    path: str
    total_gb: float
    used_gb: float
    free_gb: float


@dataclass(frozen=True)
class SystemReading:
    gpus: tuple[GpuReading, ...]
    gpu_note: str  # why no GPU is listed (empty when there is one)
    cpu_percent: float
    cpu_count: int
    ram_used_gb: float
    ram_total_gb: float
    disks: tuple[DiskReading, ...] = ()
    taken: float = field(default_factory=time.time)

    @property
    def ram_percent(self) -> float:
        return 100.0 * self.ram_used_gb / self.ram_total_gb if self.ram_total_gb else 0.0


class _Nvml:
    """NVML started once per process, on first use; failures are remembered and retried slowly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._module = None
        self._error = ""
        self._failed_at = 0.0

    def read(self) -> tuple[tuple[GpuReading, ...], str]:
        with self._lock:
            nvml = self._start()
            if nvml is None:
                return (), self._error
            try:
                return tuple(_read_device(nvml, i) for i in range(nvml.nvmlDeviceGetCount())), ""
            except nvml.NVMLError as exc:  # the driver went away (e.g. GPU reset): start again later
                log.warning("NVML reading failed: %s", exc)
                self._module, self._error, self._failed_at = None, f"GPU readings failed: {exc}", time.monotonic()
                return (), self._error

    def _start(self):  # -> the pynvml module, or None
        if self._module is not None:
            return self._module
        if self._error and time.monotonic() - self._failed_at < NVML_RETRY_S:
            return None
        try:
            import pynvml
        except ImportError:
            self._error, self._failed_at = "nvidia-ml-py is not installed: no GPU readings.", time.monotonic()
            return None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError_LibraryNotFound:
            self._error = "No NVIDIA driver found: running on the CPU (readings for CPU, RAM and disk only)."
        except pynvml.NVMLError as exc:
            self._error = f"The NVIDIA driver did not answer ({exc})."
        else:
            self._module, self._error = pynvml, ""
            return pynvml
        self._failed_at = time.monotonic()
        return None


def _read_device(nvml, index: int) -> GpuReading:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = nvml.nvmlDeviceGetName(handle)
    if isinstance(name, bytes):  # older bindings return bytes
        name = name.decode(errors="replace")
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    utilisation = temperature = None
    # Each of these may be NotSupported on some boards; a missing metric is not an error.
    try:
        utilisation = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except nvml.NVMLError:
        pass
    try:
        temperature = int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
    except nvml.NVMLError:
        pass
    return GpuReading(index, str(name), memory.used / GIB, memory.total / GIB, utilisation, temperature)


_NVML = _Nvml()


def read_gpus() -> tuple[tuple[GpuReading, ...], str]:
    """GPU readings, and a note saying why there are none."""
    return _NVML.read()


def read_disk(label: str, path: Path) -> DiskReading | None:
    """Usage of the file system holding ``path`` (None if it does not exist yet)."""
    target = Path(path)
    while not target.exists() and target != target.parent:
        target = target.parent
    try:
        usage = shutil.disk_usage(target)
    except OSError as exc:
        log.warning("disk usage of %s failed: %s", target, exc)
        return None
    return DiskReading(label, str(path), usage.total / GIB, usage.used / GIB, usage.free / GIB)


def read_system(folders: dict[str, Path] | None = None) -> SystemReading:
    """One reading of everything; ``folders`` maps a label to a folder whose disk is reported."""
    gpus, note = read_gpus()
    memory = psutil.virtual_memory()
    by_device: dict[int, DiskReading] = {}  # folders on one file system share a line
    for label, folder in (folders or {}).items():
        reading = read_disk(label, folder)
        if reading is None:
            continue
        device = _device_of(Path(folder))
        previous = by_device.get(device)
        by_device[device] = replace(previous, label=f"{previous.label} + {label}") if previous else reading
    return SystemReading(
        gpus=gpus, gpu_note=note, cpu_percent=psutil.cpu_percent(interval=None), cpu_count=os.cpu_count() or 1,
        ram_used_gb=(memory.total - memory.available) / GIB, ram_total_gb=memory.total / GIB,
        disks=tuple(by_device.values()),
    )


def _device_of(path: Path) -> int:
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return path.stat().st_dev
    except OSError:
        return -1


def folder_size(path: Path) -> int:
    """Bytes under ``path`` (symlinks not followed, unreadable entries skipped)."""
    total = 0
    for root, _dirs, files in os.walk(path, followlinks=False):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue  # removed while we walked: not worth failing a reading
    return total


def gpu_badge() -> str:
    """One line for the sidebar: the GPU and its free VRAM, or that there is none."""
    gpus, note = read_gpus()
    if not gpus:
        return "CPU only · " + ("no NVIDIA driver" if "no nvidia driver" in note.lower() else "no GPU readings")
    gpu = gpus[0]
    more = f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else ""
    return f"{gpu.name}{more} · {gpu.vram_free_gb:.1f} / {gpu.vram_total_gb:.0f} GB free"

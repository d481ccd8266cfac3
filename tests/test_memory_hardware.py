"""Hardware profile: NVML first, clean CPU-only profile without a driver, overrides, reserve."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from backend.memory import hardware
from backend.memory.hardware import GIB, detect_hardware

REPO = Path(__file__).resolve().parent.parent


class FakeNVMLError(Exception):
    pass


def fake_pynvml(*, init_error: bool = False, count: int = 1, capability_error: bool = False) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    module.NVMLError = FakeNVMLError  # type: ignore[attr-defined]
    calls: list[str] = []
    module.calls = calls  # type: ignore[attr-defined]

    def init() -> None:
        calls.append("init")
        if init_error:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def capability(handle: object) -> tuple[int, int]:
        if capability_error:
            raise FakeNVMLError("Not Supported")
        return (8, 6)

    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: count  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: calls.append(f"index {i}") or f"gpu{i}"  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByUUID = lambda u: calls.append(f"uuid {u}") or u  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda h: b"NVIDIA GeForce RTX 3060"  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = lambda h: SimpleNamespace(  # type: ignore[attr-defined]
        total=12 * GIB, free=10 * GIB, used=2 * GIB)
    module.nvmlDeviceGetCudaComputeCapability = capability  # type: ignore[attr-defined]
    return module


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch):
    def install(**kwargs: object) -> types.ModuleType:
        module = fake_pynvml(**kwargs)  # type: ignore[arg-type]
        monkeypatch.setitem(sys.modules, "pynvml", module)
        monkeypatch.setattr(hardware, "_torch_has_cuda", lambda: True)
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        monkeypatch.delenv(hardware.RESERVE_ENV, raising=False)
        return module

    return install


def test_nvml_profile(nvml) -> None:
    module = nvml()
    profile = detect_hardware()
    assert profile.has_cuda and profile.gpu_name == "NVIDIA GeForce RTX 3060" and profile.source == "nvml"
    assert profile.compute_capability == (8, 6) and profile.supports_bf16
    assert (profile.vram_total_gb, profile.vram_free_gb) == (12.0, 10.0)
    assert module.calls[-1] == "shutdown" and profile.ram_total_gb > 0 and profile.cpu_count >= 1


def test_no_driver_gives_a_clean_cpu_profile_without_importing_torch(nvml, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml(init_error=True)
    monkeypatch.setattr(hardware, "_torch_gpu", lambda: pytest.fail("torch must not be asked"))
    profile = detect_hardware()
    assert not profile.has_cuda and profile.vram_free_gb == 0 and profile.usable_vram_gb == 0
    assert profile.summary().startswith("CPU only")


def test_gpu_without_a_cuda_torch_says_why(nvml, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml()
    monkeypatch.setattr(hardware, "_torch_has_cuda", lambda: False)
    profile = detect_hardware()
    assert not profile.has_cuda and "no CUDA support" in profile.note


def test_cuda_visible_devices_picks_the_nvml_device(nvml, monkeypatch: pytest.MonkeyPatch) -> None:
    module = nvml()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    detect_hardware()
    assert "index 1" in module.calls
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not detect_hardware().has_cuda


def test_capability_from_torch_when_nvml_cannot_tell(nvml, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml(capability_error=True)
    monkeypatch.setattr(hardware, "_torch_capability", lambda: (7, 5))
    profile = detect_hardware()
    assert profile.compute_capability == (7, 5) and not profile.supports_bf16


def test_simulated_profiles() -> None:
    sim = detect_hardware(vram_gb=8, ram_gb=16)
    assert sim.simulated and sim.has_cuda and sim.vram_free_gb == 8 and sim.ram_total_gb == 16
    assert sim.supports_bf16
    assert not detect_hardware(vram_gb=0).has_cuda
    assert detect_hardware(vram_gb=6, compute_capability=(7, 5)).supports_bf16 is False


def test_reserve_from_argument_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert detect_hardware(vram_gb=12, reserve_gb=4).usable_vram_gb == 8
    monkeypatch.setenv(hardware.RESERVE_ENV, "2.5")
    assert detect_hardware(vram_gb=12).usable_vram_gb == 9.5
    monkeypatch.setenv(hardware.RESERVE_ENV, "lots")
    assert detect_hardware(vram_gb=12).usable_vram_gb == 12


def test_this_machine_and_profile_serialises() -> None:
    import torch

    profile = detect_hardware()
    assert profile.has_cuda == torch.cuda.is_available()
    assert set(profile.to_dict()) >= {"gpu_name", "vram_free_gb", "ram_total_gb", "cpu_count", "reserve_gb"}


def test_importing_the_memory_package_does_not_import_torch() -> None:
    code = "import sys, backend.memory, backend.cli.plan, backend.cli.models; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"

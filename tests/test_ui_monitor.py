"""System readings (NVML with a psutil-only fallback) and the rule that files are served only from outputs/."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pynvml
import pytest
from ui_support import idle_studio, studio_home  # noqa: F401 - fixtures

from app_pages.common import output_file, plain, safe_file
from backend import monitor


@pytest.fixture
def fresh_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor, "_NVML", monitor._Nvml())


def test_no_driver_falls_back_to_cpu_ram_and_disk(fresh_nvml: None, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    def no_library() -> None:
        raise pynvml.NVMLError_LibraryNotFound()

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    reading = monitor.read_system({"models": tmp_path / "models", "outputs": tmp_path})
    assert reading.gpus == () and "No NVIDIA driver" in reading.gpu_note
    assert reading.ram_total_gb > 0 and reading.cpu_count >= 1
    assert len(reading.disks) == 1 and reading.disks[0].label == "models + outputs"  # one file system
    assert monitor.gpu_badge() == "CPU only · no NVIDIA driver"


def test_gpu_readings_with_unsupported_metrics(fresh_nvml: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(*_args: object) -> None:
        raise pynvml.NVMLError_NotSupported()

    fake = {
        "nvmlInit": lambda: None, "nvmlDeviceGetCount": lambda: 1, "nvmlDeviceGetHandleByIndex": lambda i: i,
        "nvmlDeviceGetName": lambda h: b"NVIDIA Test GPU",
        "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(total=24 * 1024**3, used=6 * 1024**3, free=18 * 1024**3),
        "nvmlDeviceGetUtilizationRates": lambda h: SimpleNamespace(gpu=37),
        "nvmlDeviceGetTemperature": unsupported,
    }
    for name, value in fake.items():
        monkeypatch.setattr(pynvml, name, value)
    (gpu,), note = monitor.read_gpus()
    assert note == "" and gpu.name == "NVIDIA Test GPU" and gpu.utilisation_pct == 37
    assert gpu.temperature_c is None and gpu.vram_free_gb == pytest.approx(18.0)
    assert monitor.gpu_badge() == "NVIDIA Test GPU · 18.0 / 24 GB free"


def test_files_are_served_only_from_outputs(idle_studio: Path, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    outputs = idle_studio / "outputs"
    inside = outputs / "video.mp4"
    inside.write_bytes(b"x")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (outputs / "link.mp4").symlink_to(outside)
    assert output_file(str(inside)) == inside.resolve()
    assert output_file(str(outputs / "link.mp4")) is None  # a symlink pointing out
    assert output_file(str(outputs / ".." / ".." / "secret.txt")) is None
    assert output_file(str(outside)) is None and output_file("") is None and output_file(None) is None
    assert output_file(str(outputs)) is None  # folders are not files
    assert safe_file(str(outside), tmp_path) == outside.resolve()


def test_plain_makes_markdown_and_html_inert() -> None:
    text = "<b>x</b> **y** [z](javascript:1) :red[w] $a$"
    escaped = plain(text)
    for active in "<>*[]()$:":
        assert active not in escaped.replace("\\" + active, "")
    assert plain("a\nb") == "a  \nb"  # a line break stays a line break

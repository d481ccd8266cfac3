"""Files a command must never lose or misread: finish's output names, damaged model files, odd frame rates.

Each test replays a tester's report through the command line (in-process ``cli.main`` or a subprocess).
Layers: each test carries its own marker (ffmpeg, unit, tiny, e2e).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend import cli
from backend.media.video_io import ffmpeg_exe, probe_video, probe_video_fast
from backend.models import store
from backend.models.registry import MODELS

REPO = Path(__file__).resolve().parent.parent


def make_video(path: Path, rate: str, *, duration: float = 1.0, size: str = "64x48") -> Path:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=rate={rate}:duration={duration}:size={size}", "-c:v", "libx264", "-pix_fmt",
                    "yuv420p", str(path)], check=True, timeout=60)
    return path


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# --- 1: finish never replaces what exists ---------------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    return make_video(tmp_path / "in.mp4", "8")


def finish_cli(source: Path, out: Path, *extra: str) -> int:
    return cli.main(["finish", str(source), "--out", str(out), "--size", "64x48", *extra])


@pytest.mark.ffmpeg
@pytest.mark.parametrize("existing, is_folder", [("h.mp4", False), ("h.Mp4", False), ("h.gif", False),
                                                 ("h_frames", True)])
def test_finish_refuses_every_name_it_could_write(source: Path, tmp_path: Path, capsys, existing: str,
                                                  is_folder: bool) -> None:
    """`echo keep > h.mp4; finish IN --out h.MP4` wrote over h.mp4 (the suffix is normalised after the check)."""
    folder = tmp_path / "out"
    folder.mkdir()
    kept = folder / existing
    if is_folder:
        kept.mkdir()
        (kept / "000001.png").write_text("keep\n")
    else:
        kept.write_text("keep\n")
    before = sorted(p.name for p in folder.iterdir())
    assert finish_cli(source, folder / "h.MP4") == 2
    assert "already exists" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing new, no staging folder left
    assert (kept / "000001.png" if is_folder else kept).read_text() == "keep\n"


@pytest.mark.ffmpeg
def test_finish_overwrite_replaces_the_normalised_name(source: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "h.mp4").write_text("keep\n")
    assert finish_cli(source, tmp_path / "h.MP4", "--overwrite") == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "h.mp4")
    assert probe_video_fast(tmp_path / "h.mp4").frames == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.mp4", "home", "in.mp4"]


@pytest.mark.ffmpeg
def test_finish_never_publishes_over_a_file_that_appeared_meanwhile(source: Path, tmp_path: Path, capsys,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The check before the encode is not enough: the final move itself must not replace a file."""
    from backend.cli import finish as finish_command

    real_finish = finish_command.finish

    def another_program_writes_it_meanwhile(*args: Any, **kwargs: Any):
        (tmp_path / "h.mp4").write_text("keep\n")
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(finish_command, "finish", another_program_writes_it_meanwhile)
    assert finish_cli(source, tmp_path / "h.mp4") == 1
    assert "appeared while finishing" in one_error_line(capsys.readouterr().err)
    assert (tmp_path / "h.mp4").read_text() == "keep\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.mp4", "home", "in.mp4"]


# --- 9: a damaged model file is found by verify and repaired by download ---------------------------------


def models_cli(root: Path, *argv: str, fetch: Any = None) -> int:
    args = cli.build_parser().parse_args(["models", *argv, "--models-dir", str(root)])
    return args.run(args, fetch=fetch) if fetch is not None else args.run(args)


def safetensors_bytes(values: np.ndarray) -> bytes:
    data = np.ascontiguousarray(values, dtype="<f4").tobytes()
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "weight": {"dtype": "F32", "shape": list(values.shape), "data_offsets": [0, len(data)]}})
    header += " " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header.encode() + data


HUB_FILES = {
    "model_index.json": json.dumps({"_class_name": "StableVideoDiffusionPipeline",
                                    "unet": ["diffusers", "UNetSpatioTemporalConditionModel"]}).encode(),
    "unet/config.json": b'{"layers": 1}',
    "unet/diffusion_pytorch_model.fp16.safetensors": safetensors_bytes(np.arange(4096, dtype=np.float32)),
}


class HubDouble:
    """Writes files and their ``.cache/huggingface/download/*.metadata`` the way snapshot_download(local_dir=)
    does, and, like it, hands back a file on disk whose metadata is there without looking at its content."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

    def __call__(self, **kwargs: Any) -> str:
        folder = Path(kwargs["local_dir"])
        for name, data in HUB_FILES.items():
            path, meta = folder / name, folder / ".cache/huggingface/download" / f"{name}.metadata"
            if path.is_file() and meta.is_file():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            lfs = name.endswith(".safetensors")
            etag = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text(f"{'0' * 40}\n{etag}\n{time.time()}\n")
            self.fetched.append(name)
        return str(folder)


WEIGHTS = "unet/diffusion_pytorch_model.fp16.safetensors"


def cut_in_half(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


@pytest.mark.unit
def test_truncated_hub_download_is_fetched_again(tmp_path: Path, capsys) -> None:
    hub = HubDouble()
    assert models_cli(tmp_path, "download", "svd-xt", fetch=hub) == 0
    weights = tmp_path / "svd-xt" / WEIGHTS
    cut_in_half(weights)
    assert models_cli(tmp_path, "verify", "svd-xt") == 1
    assert "expected" in capsys.readouterr().err
    assert models_cli(tmp_path, "download", "svd-xt", fetch=hub) == 0
    assert "ready" in capsys.readouterr().out and hub.fetched.count(WEIGHTS) == 2
    assert weights.read_bytes() == HUB_FILES[WEIGHTS]
    assert models_cli(tmp_path, "verify", "svd-xt") == 0


@pytest.mark.unit
def test_a_cut_short_file_the_marker_took_for_complete_is_found_by_its_header(tmp_path: Path, capsys) -> None:
    """A download that re-marked a damaged file as complete: the sizes agree, the safetensors header does not."""
    hub = HubDouble()
    assert models_cli(tmp_path, "download", "svd-xt", fetch=hub) == 0
    folder = tmp_path / "svd-xt"
    cut_in_half(folder / WEIGHTS)
    store.write_marker(folder, MODELS["svd-xt"])
    assert models_cli(tmp_path, "verify", "svd-xt") == 1
    err = capsys.readouterr().err
    assert "cut short" in err and "models download svd-xt" in err and "Traceback" not in err
    assert models_cli(tmp_path, "download", "svd-xt", fetch=hub) == 0
    assert (folder / WEIGHTS).read_bytes() == HUB_FILES[WEIGHTS]
    assert models_cli(tmp_path, "verify", "svd-xt") == 0


@pytest.mark.unit
@pytest.mark.parametrize("name, change", [(WEIGHTS, lambda d: d[:-4] + bytes(4)),
                                          ("unet/config.json", lambda d: d.replace(b"1", b"2"))])
def test_checksums_are_checked_only_when_asked(tmp_path: Path, capsys, name: str, change) -> None:
    hub = HubDouble()
    assert models_cli(tmp_path, "download", "svd-xt", fetch=hub) == 0
    path = tmp_path / "svd-xt" / name
    path.write_bytes(change(path.read_bytes()))  # same size, header still valid
    assert models_cli(tmp_path, "verify", "svd-xt") == 0
    assert "--checksums" in capsys.readouterr().out
    assert models_cli(tmp_path, "verify", "svd-xt", "--checksums") == 1
    assert "checksum" in capsys.readouterr().err
    assert models_cli(tmp_path, "download", "svd-xt", "--checksums", fetch=hub) == 0
    assert path.read_bytes() == HUB_FILES[name]
    assert models_cli(tmp_path, "verify", "svd-xt", "--checksums") == 0


@pytest.mark.tiny
def test_truncated_tiny_model_is_found_by_verify_and_rebuilt_by_download(tmp_path: Path, capsys) -> None:
    """Truncate tiny-sdxl's UNet: verify said OK and download said ready, while jobs failed on it."""
    from backend.models.tiny import ensure_tiny_model
    from backend.paths import runtime_paths

    shared = ensure_tiny_model("sdxl", runtime_paths().models)  # the suite's cache: copied, never touched
    root = tmp_path / "models"
    shutil.copytree(shared, root / "tiny" / "sdxl")
    weights = root / "tiny/sdxl/unet/diffusion_pytorch_model.safetensors"
    size = weights.stat().st_size
    cut_in_half(weights)
    assert models_cli(root, "verify", "tiny-sdxl") == 1
    err = capsys.readouterr().err
    assert "unet/diffusion_pytorch_model.safetensors is cut short" in err and "models download tiny-sdxl" in err
    assert models_cli(root, "download", "tiny-sdxl") == 0
    assert "tiny-sdxl is ready" in capsys.readouterr().out
    assert weights.stat().st_size == size
    assert models_cli(root, "verify", "tiny-sdxl") == 0


# --- 10: frame rates are read from the stream, not from ffmpeg's text ------------------------------------


@pytest.mark.ffmpeg
@pytest.mark.parametrize("rate", ["1000", "30000/1001", "24000/1001", "25"])
def test_probes_read_the_exact_rate_and_agree(tmp_path: Path, rate: str) -> None:
    video = make_video(tmp_path / "v.mp4", rate)
    slow, fast = probe_video(video), probe_video_fast(video)
    expected = Fraction(rate)
    frames = round(expected)  # one second
    assert slow.fps == pytest.approx(float(expected), rel=1e-9) and slow.frames == frames
    assert (slow.fps, slow.frames, slow.width, slow.height, slow.codec) == \
        (fast.fps, fast.frames, fast.width, fast.height, fast.codec)
    assert slow.duration == pytest.approx(fast.duration) == pytest.approx(frames / float(expected))


@pytest.mark.ffmpeg
def test_finish_reads_a_1000_fps_source(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    video = make_video(tmp_path / "k.mp4", "1000", duration=0.5)  # "1k fps" in ffmpeg's banner
    assert cli.main(["finish", str(video), "--out", str(tmp_path / "a.mp4"), "--size", "64x48"]) == 2
    assert "runs at 1000 fps" in one_error_line(capsys.readouterr().err)
    assert cli.main(["finish", str(video), "--out", str(tmp_path / "b.mp4"), "--size", "64x48", "--fps", "8",
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 4 and result["fps"] == 8.0  # half a second, as the source lasts


@pytest.mark.ffmpeg
@pytest.mark.tiny
@pytest.mark.e2e
def test_extending_a_1000_fps_video_keeps_its_rate(tmp_path: Path) -> None:
    """`generate --mode extend` of a 1000 fps source gave 2008 frames lasting 4 min 11 s."""
    video = make_video(tmp_path / "fast.mp4", "1000", duration=0.25)
    env = dict(os.environ, STUDIO_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-m", "backend", "generate", "--prompt", "x", "--mode", "extend",
                           "--video", str(video), "--models", "tiny", "--duration", "1", "--fps", "8",
                           "--size", "256x144", "--json"], capture_output=True, text=True, env=env, timeout=300,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    info = probe_video_fast(Path(record["output"]))
    assert info.fps == 1000.0 and info.frames == 250 + 1000  # the source, then one second more
    assert info.duration == pytest.approx(1.25)

"""Finishing stage: each filter does what it should, exports are verified, failures are honest.

Small frames throughout (64x48 -> 128x96): the 2-core CI machine encodes them in a blink.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import threading
import tracemalloc
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import psutil
import pytest

from backend.errors import DiskFull, FinishError, JobCancelled, VerifyFailed
from backend.media.clip import Clip, MemoryClip, save_frames
from backend.media.luts import CubeLut, identity_cube, write_cube
from backend.media.video_io import ffmpeg_exe, iter_frames, probe_video
from backend.paths import runtime_paths
from backend.record import FinishRecord
from backend.spec import FinishOptions, JobSpec
from backend.stages import export, filtergraph
from backend.stages import finish as finish_stage
from backend.stages.context import StageContext
from backend.stages.filtergraph import OutputShape, SourceShape
from backend.stages.finish import FinishTarget, finish

PLAIN = FinishOptions(interpolation="none", grade="none", sharpen=0.0)
SMALL = FinishTarget(128, 96, 8, 2)




class GeneratedClip:
    """Frames made on demand, so a long clip never exists in memory as a whole."""

    def __init__(self, count: int, width: int, height: int, fps: float) -> None:
        self.count, self.width, self.height, self.fps = count, width, height, fps

    def frames(self) -> Iterator[np.ndarray]:
        for index in range(self.count):
            yield np.full((self.height, self.width, 3), index % 256, dtype=np.uint8)

    def __len__(self) -> int:
        return self.count


def colourful(width: int = 64, height: int = 48, count: int = 2) -> list[np.ndarray]:
    """Moderately saturated hues across the frame, so grades have something to change."""
    hue = np.tile(np.linspace(0, 179, width, dtype=np.float32), (height, 1))
    value = np.tile(np.linspace(90, 230, height, dtype=np.float32)[:, None], (1, width))
    hsv = np.stack([hue, np.full_like(hue, 140), value], axis=-1).astype(np.uint8)
    frame = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return [frame.copy() for _ in range(count)]


def shaky(count: int, width: int, height: int, amplitude: int, seed: int = 1) -> list[np.ndarray]:
    """A still, textured scene seen by a camera that jumps up to ``amplitude`` px each frame."""
    rng = np.random.default_rng(seed)
    pad = 2 * amplitude
    texture = cv2.GaussianBlur(rng.random((height + 2 * pad, width + 2 * pad)).astype(np.float32), (0, 0), 3)
    texture = ((texture - texture.min()) / np.ptp(texture) * 255).astype(np.uint8)
    scene = np.stack([texture, 255 - texture, texture // 2 + 60], axis=-1)
    frames = []
    for _ in range(count):
        dx, dy = rng.integers(-amplitude, amplitude + 1, 2)
        frames.append(np.ascontiguousarray(scene[pad + dy: pad + dy + height, pad + dx: pad + dx + width]))
    return frames


def jitter(frames: list[np.ndarray]) -> float:
    """Mean frame-to-frame displacement (px), by phase correlation."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in frames]
    window = cv2.createHanningWindow(grey[0].shape[::-1], cv2.CV_32F)
    return float(np.mean([np.hypot(*cv2.phaseCorrelate(a, b, window)[0]) for a, b in itertools.pairwise(grey)]))


def saturation(frames: list[np.ndarray]) -> float:
    return float(np.mean([cv2.cvtColor(f, cv2.COLOR_RGB2HSV)[..., 1].mean() for f in frames]))


def decode(path: Path) -> list[np.ndarray]:
    return [f.copy() for f in iter_frames(path)]


@pytest.fixture
def studio(tmp_path: Path):
    """finish() into tmp_path/outputs with a per-call work folder."""
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    calls = iter(range(1000))

    def run(clip, target=SMALL, options=PLAIN, name="out.mp4", **kwargs) -> FinishRecord:
        return finish(clip, target=target, options=options, workdir=tmp_path / f"work{next(calls)}",
                      output_path=outputs / name, metadata=kwargs.pop("metadata", {"title": "t"}), **kwargs)

    run.outputs = outputs
    return run


def no_ffmpeg_children() -> bool:
    return not [p for p in psutil.Process().children(recursive=True) if "ffmpeg" in p.name()]


# --- the filter graph (pure) ----------------------------------------------------------------

def graph(options: FinishOptions, src=(64, 48, 8.0, 16), out=(128, 96, 24, 48), **files) -> str:
    return filtergraph.build_graph(SourceShape(*src), OutputShape(*out), options, **files).graph()


@pytest.mark.unit
def test_graph_order_and_defaults() -> None:
    text = graph(FinishOptions(grade="cinematic", sharpen=0.8, stabilize="vidstab"),
                 transforms_file="transforms.trf", lut_file="grade.cube")
    order = ["vidstabtransform", "curves", "eq=", "lut3d", "framerate", "tpad", "trim", "scale=", "unsharp"]
    positions = [text.index(name) for name in order]
    assert positions == sorted(positions), text
    assert "flags=lanczos" in text and text.endswith("setsar=1," + filtergraph.TAG_BT709)


@pytest.mark.unit
def test_graph_skips_what_is_off() -> None:
    plan = filtergraph.build_graph(SourceShape(128, 96, 24, 5), OutputShape(128, 96, 24, 5), PLAIN)
    assert plan.graph() == ("tpad=stop_mode=clone:stop=5,trim=end_frame=5,setpts=N/24/TB,"
                            "scale=w=128:h=96:flags=lanczos:out_color_matrix=bt709:out_range=tv,"
                            "format=yuv420p,setsar=1," + filtergraph.TAG_BT709)
    assert plan.steps[0] == "fps:24 unchanged"


@pytest.mark.parametrize("src, policy, expect", [
    ((1024, 576), "fit", ["scale=w=1920:h=1080"]),
    ((1000, 1000), "fit", ["scale=w=1080:h=1080", "pad=1920:1080:420:0"]),
    ((1000, 1000), "fill", ["crop=1000:562:0:219", "scale=w=1920:h=1080"]),
    ((63, 47), "fit", ["scale=w=128:h=96"]),
])
@pytest.mark.unit
def test_geometry_never_stretches(src, policy, expect) -> None:
    filters, _ = filtergraph.geometry_filters(*src, 1920 if src[0] > 100 else 128, 1080 if src[0] > 100 else 96,
                                              policy)
    for part in expect:
        assert any(f.startswith(part) for f in filters), (part, filters)


@pytest.mark.unit
def test_fps_modes_and_short_minterpolate() -> None:
    assert filtergraph.fps_filters("blend", 8, 30, 32)[0] == ["framerate=fps=30"]
    assert filtergraph.fps_filters("none", 8, 30, 32)[0] == ["fps=30"]
    assert filtergraph.fps_filters("minterpolate", 8, 30, 32)[0][0].startswith("minterpolate=fps=30")
    filters, step = filtergraph.fps_filters("minterpolate", 8, 30, 2)
    assert filters == ["framerate=fps=30"] and "needs 3+ frames" in step
    assert filtergraph.rate_text(7.5) == "15/2" and filtergraph.rate_text(29.97002997) == "30000/1001"


@pytest.mark.unit
def test_graph_refuses_unsafe_file_names() -> None:
    with pytest.raises(ValueError, match="unsafe"):
        graph(PLAIN, lut_file="a,b:c.cube")


# --- what each step does to the pictures -------------------------------------------------------

@pytest.mark.parametrize("policy", ["fit", "fill"])
def test_upscale_exact_size_with_aspect_policy(studio, policy: str) -> None:
    square = [np.full((64, 64, 3), 220, dtype=np.uint8)] * 2
    options = dataclasses.replace(PLAIN, aspect=policy)
    result = studio(MemoryClip(square, 8), FinishTarget(128, 96, 8, 2), options)
    frame = decode(result.file)[0]
    assert frame.shape == (96, 128, 3) and (result.width, result.height) == (128, 96)
    edges = frame[:, :8].mean()
    if policy == "fit":  # 96x96 picture centred, black bars left and right
        assert edges < 25 and frame[:, 40:88].mean() > 200
    else:  # cropped to fill: no bars
        assert edges > 200


@pytest.mark.parametrize("options", [PLAIN, dataclasses.replace(PLAIN, grade="neutral", interpolation="blend")])
def test_colour_survives_and_is_labelled_bt709(studio, options: FinishOptions) -> None:
    red = [np.full((48, 64, 3), (200, 50, 50), dtype=np.uint8)] * 2
    result = studio(MemoryClip(red, 8), FinishTarget(128, 96, 16, 4), options)
    frame = decode(result.file)[0]
    tolerance = 4 if options.grade == "none" else 16  # neutral lifts contrast and colour a little
    assert np.abs(frame[20:70, 20:100].reshape(-1, 3).mean(axis=0) - (200, 50, 50)).max() < tolerance
    header = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(result.file)], capture_output=True,
                            text=True).stderr
    assert "yuv420p(tv, bt709, progressive)" in header


@pytest.mark.parametrize("grade, check", [
    ("vivid", lambda base, out: saturation(out) > saturation(base) + 15),
    ("noir", lambda base, out: _chroma(out) < 4 < _chroma(base)),
    ("cinematic", lambda base, out: saturation(out) < saturation(base)),
    ("neutral", lambda base, out: 0 < saturation(out) - saturation(base) < 10),
    ("warm", lambda base, out: _red_minus_blue(out) > _red_minus_blue(base) + 8),
    ("cool", lambda base, out: _red_minus_blue(out) < _red_minus_blue(base) - 8),
])
def test_grade_moves_colour_the_right_way(studio, grade: str, check) -> None:
    clip = MemoryClip(colourful(), 8)
    base = decode(studio(clip, name="base.mp4").path)
    graded = decode(studio(clip, options=dataclasses.replace(PLAIN, grade=grade), name=f"{grade}.mp4").path)
    assert check(base, graded), (saturation(base), saturation(graded))


def _chroma(frames: list[np.ndarray]) -> float:
    return float(np.mean([(f.max(axis=2).astype(int) - f.min(axis=2)).mean() for f in frames]))


def _red_minus_blue(frames: list[np.ndarray]) -> float:
    return float(np.mean([f[..., 0].astype(float).mean() - f[..., 2].astype(float).mean() for f in frames]))


def test_lut_is_applied(studio, tmp_path: Path) -> None:
    swap = identity_cube(9)
    lut_path = tmp_path / "swap.cube"
    write_cube(CubeLut(9, swap.table[:, ::-1].copy()), lut_path)  # red <-> blue
    red = [np.full((48, 64, 3), (220, 30, 30), dtype=np.uint8)] * 2
    result = studio(MemoryClip(red, 8), options=dataclasses.replace(PLAIN, lut=str(lut_path)))
    r, _, b = decode(result.file)[0][40:60, 50:80].reshape(-1, 3).mean(axis=0)
    assert b > 190 and r < 60
    assert any(step.startswith("lut:") for step in result.steps)


def test_sharpen_adds_detail(studio) -> None:
    blocks = np.kron(np.random.default_rng(0).integers(0, 255, (6, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    clip = MemoryClip([blocks] * 2, 8)  # hard edges, softened by the 2x upscale
    soft = decode(studio(clip, name="soft.mp4").path)[0]
    sharp = decode(studio(clip, options=dataclasses.replace(PLAIN, sharpen=1.0), name="sharp.mp4").path)[0]

    def detail(frame: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())

    assert detail(sharp) > 1.5 * detail(soft), (detail(sharp), detail(soft))


@pytest.mark.parametrize("mode, limit", [("vidstab", 0.3), ("deshake", 0.5)])
def test_stabilisation_reduces_jitter(studio, mode: str, limit: float) -> None:
    frames = shaky(24, 160, 120, 6)
    result = studio(MemoryClip(frames, 8), FinishTarget(160, 120, 8, 24),
                    dataclasses.replace(PLAIN, stabilize=mode))
    before, after = jitter(frames), jitter(decode(result.file))
    assert before > 3
    assert after < limit * before, (before, after)
    assert result.steps[0].startswith(f"stabilize:{mode}")


def test_frame_rate_blend_vs_repeat(studio) -> None:
    flicker = [np.full((48, 64, 3), 255 * (i % 2), dtype=np.uint8) for i in range(8)]  # 8 fps, 1 s
    target = FinishTarget(64, 48, 24, 24)
    repeated = decode(studio(MemoryClip(flicker, 8), target, PLAIN, name="r.mp4").path)
    blended = decode(studio(MemoryClip(flicker, 8), target, dataclasses.replace(PLAIN, interpolation="blend"),
                            name="b.mp4").path)
    motion = decode(studio(MemoryClip(flicker, 8), target,
                           dataclasses.replace(PLAIN, interpolation="minterpolate"), name="m.mp4").path)
    assert len(repeated) == len(blended) == len(motion) == 24

    def greys(frames):  # frames that are neither (nearly) black nor white: in-between pictures
        return sum(30 < f.mean() < 225 for f in frames)

    assert greys(repeated) == 0
    assert greys(blended) >= 8


@pytest.mark.parametrize("source_frames, total", [(10, 4), (10, 40), (1, 1), (1, 12)])
def test_exact_frame_count_trim_or_pad(studio, source_frames: int, total: int) -> None:
    frames = [np.full((48, 64, 3), 20 * i, dtype=np.uint8) for i in range(source_frames)]
    result = studio(MemoryClip(frames, 8), FinishTarget(64, 48, 8, total))
    out = decode(result.file)
    assert len(out) == result.frames == total == probe_video(result.file).frames
    if total > source_frames:  # padded by cloning the last frame
        assert abs(out[-1].mean() - frames[-1].mean()) < 3


def test_single_frame_with_minterpolate_falls_back_to_blend(studio) -> None:
    one = [np.full((48, 64, 3), 128, dtype=np.uint8)]
    result = studio(MemoryClip(one, 8), FinishTarget(128, 96, 24, 12),
                    dataclasses.replace(PLAIN, interpolation="minterpolate", stabilize="vidstab"))
    assert result.frames == 12
    assert any("minterpolate needs" in step for step in result.steps)


def test_odd_sizes(studio) -> None:
    odd = [np.random.default_rng(i).integers(0, 255, (47, 63, 3), dtype=np.uint8) for i in range(3)]
    result = studio(MemoryClip(odd, 8), FinishTarget(129, 97, 8, 3),
                    dataclasses.replace(PLAIN, sharpen=1.0, interpolation="blend"))
    assert (result.width, result.height) == (128, 96)
    assert result.steps[0].startswith("size:129x97 -> 128x96")
    assert decode(result.file)[0].shape == (96, 128, 3)


def test_long_input_is_streamed(studio) -> None:
    clip = GeneratedClip(1800, 64, 48, 30)  # 1 minute at 30 fps; 16 MB if held at once
    tracemalloc.start()
    try:
        result = studio(clip, FinishTarget(64, 48, 30, 1800))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.frames == 1800 and probe_video(result.file).frames == 1800
    assert peak < 4 * 2**20, peak


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_every_common_rate_is_delivered_as_h264_at_that_rate(studio, fps: int) -> None:
    # 25 fps once read back as 25.51 (the last frame had no duration) and fell back to MPEG-4, then GIF.
    result = studio(MemoryClip(colourful(64, 48, 2 * fps), fps), FinishTarget(64, 48, fps, 2 * fps))
    assert result.format == "mp4/h264" and result.fallbacks == []
    info = probe_video(result.file)
    assert (info.frames, info.fps) == (2 * fps, fps)


def test_wrong_frame_shape_is_an_error_not_a_fallback(studio) -> None:
    clip = MemoryClip([np.zeros((48, 64, 3), np.uint8), np.zeros((40, 64, 3), np.uint8)], 8)
    with pytest.raises(ValueError, match="frame 1"):
        studio(clip)
    assert not any(studio.outputs.iterdir())


# --- metadata, progress, record ------------------------------------------------------------

def test_metadata_embedded_safely(studio) -> None:
    comment = json.dumps({"prompt": "waves; rm -rf / $(x) `y` \"q\" 'z' = & | > <", "pad": "x" * 20000})
    result = studio(MemoryClip(colourful(), 8), metadata={"title": "Ocean = waves", "comment": comment})
    info = probe_video(result.file)
    assert info.comment == comment
    assert any(arg == f"comment={comment}" for arg in result.ffmpeg_args)


def test_progress_is_monotonic_and_counts_frames(studio) -> None:
    seen: list[tuple] = []
    studio(GeneratedClip(300, 64, 48, 30), FinishTarget(64, 48, 30, 300),
           report=lambda *args: seen.append(args))
    fractions = [s[0] for s in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert seen[-1][2:] == (300, 300)
    assert all(total == 300 for *_, total in seen)


def test_result_record_is_json(studio) -> None:
    result = studio(MemoryClip(colourful(), 8), options=FinishOptions())
    data = json.loads(json.dumps(result.to_dict()))
    assert data["format"] == "mp4/h264" and data["codec"] == "h264" and data["fallbacks"] == []
    assert data["filter_graph"] in data["ffmpeg_args"]
    assert [s.split(":")[0] for s in data["steps"]] == ["grade", "fps", "frames", "scale", "sharpen", "encode",
                                                        "verified"]
    assert result.file.parent == studio.outputs


def test_stage_run_with_context(tmp_path: Path) -> None:
    paths = runtime_paths(tmp_path)
    paths.ensure()
    spec = JobSpec(prompt="x", width=128, height=128, fps=8, duration=1.0,
                   finish=FinishOptions(grade="warm", sharpen=0.3))
    clip = Clip(tuple(save_frames(colourful(64, 64, 4), tmp_path / "frames")), 4, 64, 64)
    progress: list[tuple] = []
    ctx = StageContext(job_id="j1", stage="finish", spec=spec, workdir=paths.job_workdir("j1"),
                       cancel_event=threading.Event(), sink=lambda *args: progress.append(args))
    target = FinishTarget(spec.width, spec.height, spec.fps, spec.total_frames)
    result = finish_stage.run(ctx, finish_stage.FinishInputs(clip, target, paths.outputs / "j1.mp4", {"title": "j1"}))
    assert result.frames == 8 and (result.width, result.height) == (128, 128)
    assert result.path == str(paths.outputs / "j1.mp4") and result.to_dict()["path"] == result.path
    assert progress[-1][0] == 1.0
    assert (paths.job_workdir("j1") / "finish").is_dir()


# --- fallbacks, failures, cancel ---------------------------------------------------------------

BROKEN = "no_such_encoder"


@pytest.mark.parametrize("broken, expect_format, suffix", [
    (["H264_X264"], "mp4/mpeg4", ".mp4"),
    (["H264_X264", "MPEG4"], "gif", ".gif"),
    (["H264_X264", "MPEG4", "GIF"], "png-frames", ""),
])
def test_encoder_failure_walks_the_fallback_chain(studio, monkeypatch, broken, expect_format, suffix) -> None:
    for name in broken:
        monkeypatch.setattr(export, name, dataclasses.replace(getattr(export, name), encoder=BROKEN))
    result = studio(MemoryClip(colourful(count=3), 8), FinishTarget(128, 96, 8, 3))
    assert result.format == expect_format and result.frames == 3
    assert len(result.fallbacks) == len(broken)
    assert all("Unknown encoder 'no_such_encoder'" in reason for reason in result.fallbacks)
    if suffix:
        assert result.file == studio.outputs / f"out{suffix}"
    else:
        assert result.file == studio.outputs / "out_frames" and len(list(result.file.glob("*.png"))) == 3
    assert [p.name for p in studio.outputs.iterdir()] == [result.file.name]


def test_no_format_survives_is_an_error_with_ffmpegs_message(studio, monkeypatch) -> None:
    for name in ("H264_X264", "MPEG4", "GIF", "PNG_FRAMES"):
        monkeypatch.setattr(export, name, dataclasses.replace(getattr(export, name), encoder=BROKEN))
    with pytest.raises(FinishError, match="Unknown encoder 'no_such_encoder'") as info:
        studio(MemoryClip(colourful(), 8))
    assert str(info.value).count("failed:") == 4
    assert not any(studio.outputs.iterdir())


def test_failed_verification_falls_back(studio, monkeypatch) -> None:
    real = export.verify_output

    def fussy(path, fmt, **kw):
        if fmt.codec == "h264":
            raise VerifyFailed("2 frames, expected 3")
        return real(path, fmt, **kw)

    monkeypatch.setattr(export, "verify_output", fussy)
    result = studio(MemoryClip(colourful(), 8))
    assert result.format == "mp4/mpeg4"
    assert result.fallbacks == ["H.264 MP4 (libx264) failed: 2 frames, expected 3"]


@pytest.mark.skipif(export.cuda_gpu_present(), reason="needs a machine without a CUDA GPU")
def test_nvenc_without_gpu_falls_back_to_libx264(studio) -> None:
    result = studio(MemoryClip(colourful(), 8), options=dataclasses.replace(PLAIN, encoder="h264_nvenc"))
    assert result.format == "mp4/h264" and "libx264" in result.ffmpeg_args
    assert len(result.fallbacks) == 1 and result.fallbacks[0].startswith("H.264 MP4 (h264_nvenc) failed")
    auto = studio(MemoryClip(colourful(), 8), options=dataclasses.replace(PLAIN, encoder="auto"), name="a.mp4")
    assert auto.fallbacks == [] and "encoder:auto -> libx264 (no CUDA GPU found)" in auto.steps
    assert auto.steps[-2] == "encode:mp4/h264 libx264 preset medium crf 18"


def test_auto_encoder_checks_that_nvenc_really_starts(monkeypatch) -> None:
    monkeypatch.setattr(export, "cuda_gpu_present", lambda: True)
    monkeypatch.setattr(export, "nvenc_problem", lambda: "Cannot load libcuda.so.1")
    assert export.choose_encoder("auto") == (
        "libx264", "encoder:auto -> libx264 (h264_nvenc does not start here: Cannot load libcuda.so.1)")
    monkeypatch.setattr(export, "nvenc_problem", lambda: None)
    assert export.choose_encoder("auto")[0] == "h264_nvenc"
    assert export.choose_encoder("libx264") == ("libx264", None)


def test_disk_full_fails_cleanly(studio, monkeypatch) -> None:
    monkeypatch.setattr(finish_stage, "temp_output", lambda workdir, fmt, index: Path("/dev/full"))
    with pytest.raises(DiskFull, match="No space left on device"):
        studio(MemoryClip(colourful(), 8))
    assert not any(studio.outputs.iterdir())
    assert Path("/dev/full").exists()  # cleanup never touches what it did not create
    assert no_ffmpeg_children()


def test_cancel_stops_ffmpeg_and_publishes_nothing(studio, tmp_path: Path) -> None:
    calls = 0

    def cancel_later() -> None:
        nonlocal calls
        calls += 1
        if calls > 20:
            raise JobCancelled("cancelled during finish")

    with pytest.raises(JobCancelled):
        studio(GeneratedClip(200, 64, 48, 8), FinishTarget(64, 48, 8, 200), check_cancelled=cancel_later)
    assert no_ffmpeg_children()
    assert not any(studio.outputs.iterdir())
    leftovers = [p.name for p in tmp_path.glob("work*/attempt*") if p.suffix not in (".log",)]
    assert leftovers == []


def test_bad_lut_is_refused_before_encoding(studio, tmp_path: Path) -> None:
    bad = tmp_path / "bad.cube"
    bad.write_text("LUT_3D_SIZE 2\n0 0 0\n")
    with pytest.raises(ValueError, match="needs 8 rows"):
        studio(MemoryClip(colourful(), 8), options=dataclasses.replace(PLAIN, lut=str(bad)))
    assert not any(studio.outputs.iterdir())


def test_publish_across_filesystems(tmp_path: Path, monkeypatch) -> None:
    temp = tmp_path / "work" / "a.mp4"
    temp.parent.mkdir()
    temp.write_bytes(b"video")
    real_replace = os.replace

    def cross_device(src, dst):
        if Path(src) == temp:
            raise OSError(18, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", cross_device)
    final = export.publish(temp, tmp_path / "outputs" / "a.mp4")
    assert final.read_bytes() == b"video" and not temp.exists()
    assert [p.name for p in final.parent.iterdir()] == ["a.mp4"]


# --- the finish command ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_video(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("video")
    result = finish(MemoryClip(shaky(16, 80, 60, 3), 8), target=FinishTarget(80, 60, 8, 16), options=PLAIN,
                    workdir=folder / "work", output_path=folder / "in.mp4", metadata={})
    return result.file


def test_cli_finish(small_video: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from backend import cli

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    out = tmp_path / "done.mp4"
    code = cli.main(["finish", str(small_video), "--out", str(out), "--fps", "16", "--size", "160x120",
                            "--grade", "cinematic", "--sharpen", "0.8", "--stabilize", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == str(out) and data["frames"] == 32 and data["fps"] == 16.0
    # the flow frames are made first (in Python), then the graph stabilises them
    assert data["steps"][0].startswith("fps:flow 8->16") and data["steps"][1].startswith("stabilize:vidstab")
    assert data["interpolation"] == "flow"
    info = probe_video(out)
    assert (info.width, info.height, info.codec) == (160, 120, "h264")
    assert json.loads(info.comment)["finish"]["grade"] == "cinematic"


@pytest.mark.parametrize("extra, message", [
    (["--size", "big"], "--size must look like"),
    (["--grade", "cinematic", "--sharpen", "9"], "finish.sharpen"),
    (["--lut", "/nonexistent.cube"], "cannot be read"),
])
def test_cli_bad_input_is_one_line(small_video: Path, tmp_path: Path, capsys, extra, message) -> None:
    from backend import cli

    code = cli.main(["finish", str(small_video), "--out", str(tmp_path / "x.mp4"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


def test_cli_not_a_video(tmp_path: Path, capsys) -> None:
    from backend import cli

    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    assert cli.main(["finish", str(fake), "--out", str(tmp_path / "o.mp4")]) == 2
    assert capsys.readouterr().err.startswith("error: ")

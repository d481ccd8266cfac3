"""Whole jobs on the tiny set with the engines that are told where to go: LTX-Video (keyframes at frame
indices), Wan (first and last frame per segment), SkyReels-V2 (continuation), and Extend keeping the source.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.jobs.orchestrator import VideoGenerator
from backend.media.uploads import store_video
from backend.media.video_io import iter_frames, probe_video
from backend.paths import runtime_paths
from backend.spec import JobSpec

pytestmark = [pytest.mark.tiny, pytest.mark.ffmpeg, pytest.mark.e2e]

PROMPT = "a red fox runs across a snowy field"
TIMEOUT = 300


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> VideoGenerator:
    gen = VideoGenerator(runtime_paths(tmp_path_factory.mktemp("studio")))
    yield gen
    gen.shutdown()


def run(generator: VideoGenerator, **changes):
    values = dict(prompt=PROMPT, model_set="tiny", duration=3, fps=24, seed=5, keyframes=4, width=256, height=144)
    values.update(changes)
    status = generator.wait(generator.submit(JobSpec(**values)), timeout=TIMEOUT)
    assert status.state == "done", status.error
    return status, json.loads(Path(status.sidecar).read_text())


@pytest.mark.parametrize("fps", [24, 30])
def test_ltx_makes_exact_frames_at_the_rate_asked_with_every_keyframe_at_its_index(generator, fps):
    status, sidecar = run(generator, engine="ltx", fps=fps)
    info = probe_video(Path(status.output))
    assert (info.frames, info.fps, info.codec) == (3 * fps, fps, "h264")
    motion = sidecar["stages"]["motion"]
    assert motion["conditioning"] == "keyframes" and motion["fps"] == fps  # native: no rate conversion
    assert motion["join"].startswith("conditioned") and "crossfade" not in motion["join"]
    indices = [c["frame_index"] for c in motion["conditions"]]
    assert [c["keyframe"] for c in motion["conditions"]] == [0, 1, 2, 3] and indices[0] == 0
    assert indices[-1] == 3 * fps - 1 and indices == sorted(indices)
    assert f"fps:{fps} unchanged" in sidecar["stages"]["finish"]["steps"]  # no frame blending in the finish


def test_wan_tells_each_segment_its_start_and_end_keyframe(generator):
    status, sidecar = run(generator, engine="wan", fps=16)
    motion = sidecar["stages"]["motion"]
    assert motion["conditioning"] == "first_last" and len(motion["segments"]) == 3
    kinds = [(c["keyframe"], c["kind"], c["segment"]) for c in motion["conditions"]]
    assert kinds == [(0, "first", 0), (1, "last", 0), (1, "first", 1), (2, "last", 1), (2, "first", 2),
                     (3, "last", 2)]
    assert "crossfade" not in motion["join"] and probe_video(Path(status.output)).frames == 48


def test_skyreels_makes_one_long_shot_from_the_first_keyframe(generator):
    status, sidecar = run(generator, engine="skyreels")
    motion = sidecar["stages"]["motion"]
    assert motion["conditioning"] == "continuation" and len(sidecar["stages"]["keyframes"]["prompts"]) == 1
    assert probe_video(Path(status.output)).frames == 72


def _source_clip(folder: Path) -> Path:
    """1 s of 1280x720 at 25 fps: a gradient with a moving square (what the user wants to extend)."""
    import imageio_ffmpeg

    path = folder / "source.mp4"
    writer = imageio_ffmpeg.write_frames(str(path), (1280, 720), fps=25, quality=None, macro_block_size=1,
                                         output_params=["-crf", "12", "-pix_fmt", "yuv420p"])
    writer.send(None)
    y, x = np.mgrid[0:720, 0:1280]
    for i in range(25):
        frame = np.stack([x * 255 // 1280, y * 255 // 720, np.full_like(x, 90)], axis=-1).astype(np.uint8)
        frame[300:420, 100 + 40 * i: 220 + 40 * i] = (240, 240, 40)
        writer.send(frame)
    writer.close()
    return path


@pytest.mark.parametrize("engine", ["skyreels", "ltx"])
def test_extend_keeps_the_source_size_rate_and_frames(generator, tmp_path, engine):
    source = _source_clip(tmp_path)
    stored = store_video(source.read_bytes(), source.name, generator.paths.uploads)
    status, sidecar = run(generator, engine=engine, mode="extend", video=str(stored.path), duration=1, keyframes=2)
    info = probe_video(Path(status.output))
    assert (info.width, info.height, info.fps) == (1280, 720, 25)
    assert info.frames == 25 + 25  # the source, then one second of continuation at its rate
    motion = sidecar["stages"]["motion"]
    assert motion["conditions"][0]["kind"] == "source video"  # continued from the source's frames
    src = list(iter_frames(source))
    out = list(iter_frames(Path(status.output)))
    for a, b in zip(src[:5], out[:5]):  # the user's footage comes back as it was (encoder tolerance only)
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3.0


def _rotated_portrait_jpeg(folder: Path) -> Path:
    """A phone photo: stored 320x180 (landscape) with EXIF orientation 6, shown 180x320 (portrait)."""
    from PIL import Image

    stored = np.zeros((180, 320, 3), np.uint8)
    stored[:, :160] = (250, 40, 40)  # left half red: after the 90° turn it is the top half
    path = folder / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    return path


def test_image_to_video_takes_an_exif_rotated_portrait_as_given(generator, tmp_path):
    from PIL import Image

    from backend.media.uploads import store_image

    photo = _rotated_portrait_jpeg(tmp_path)
    stored = store_image(photo.read_bytes(), photo.name, generator.paths.uploads)
    status, sidecar = run(generator, engine="ltx", mode="i2v", image=str(stored.path), duration=1, keyframes=2)
    keyframes = sidecar["stages"]["keyframes"]
    assert keyframes["start_image"] == "180x320 padded to 128x64" and keyframes["seeds"][0] is None
    first = np.asarray(Image.open(status.previews[0]).convert("RGB")).astype(int)
    height, width = first.shape[:2]
    assert first[:, : width // 4].mean() < 10 and first[:, -width // 4:].mean() < 10  # bars left and right
    middle = first[:, width // 2]
    assert middle[: height // 3, 0].mean() > 150 and middle[-height // 3:, 0].mean() < 80  # red on top: turned
    assert sidecar["stages"]["motion"]["conditions"][0] == {"keyframe": 0, "frame_index": 0, "segment": 0,
                                                            "kind": "image"}

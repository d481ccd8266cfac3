"""Segment previews: each finished motion segment becomes a small H.264 MP4 while the job still runs.

The encode on its own (made once, atomically, never from a half-written folder), and the motion stage on the
tiny LTX twin: the preview of a segment is there when the stage reports that segment done.
"""

from __future__ import annotations

import subprocess
import threading

import numpy as np
import pytest
from PIL import Image

from backend.media import segment_previews
from backend.media.clip import save_frames
from backend.media.segment_previews import finished_previews, make_preview
from backend.media.video_io import probe_video

pytestmark = pytest.mark.ffmpeg


def _frames(count: int, size=(1280, 720)) -> list[np.ndarray]:
    width, height = size
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 30, np.uint8)
        frame[height // 3: height // 2, i * width // count: i * width // count + width // 8] = (230, 90, 40)
        frames.append(frame)
    return frames


def test_a_finished_segment_becomes_a_small_playable_mp4_made_once(tmp_path, monkeypatch) -> None:
    work = tmp_path / "work"
    folder = work / "segments" / "segment_000"
    save_frames(_frames(12), folder)
    preview = make_preview(folder, 24, 3)
    assert preview == folder / "preview_of_003.mp4"
    info = probe_video(preview)
    assert info.codec == "h264" and info.frames == 12 and info.fps == 24
    assert info.width == segment_previews.MAX_WIDTH and info.height == 270  # small, in proportion, even
    assert not (folder / segment_previews.PARTIAL).exists()

    def no_second_encode(*args, **kwargs):
        raise AssertionError("the preview was made again")

    monkeypatch.setattr(subprocess, "run", no_second_encode)
    assert make_preview(folder, 24, 3) == preview  # made once (a resume keeps it)
    listed = finished_previews(work)
    assert [(p.number, p.total, p.path) for p in listed] == [(1, 3, preview)]


def test_only_whole_segments_get_a_preview_and_a_failure_costs_only_the_preview(tmp_path, monkeypatch) -> None:
    work = tmp_path / "work"
    save_frames(_frames(4, (64, 48)), work / "segments" / "segment_001.partial")  # still being written
    assert finished_previews(work) == []
    odd = work / "segments" / "segment_002"
    odd.mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(odd / "frame.png")  # not the stage's numbering: never guessed at
    assert make_preview(odd, 24, 3) is None

    folder = work / "segments" / "segment_000"
    save_frames(_frames(4, (64, 48)), folder)
    failing = tmp_path / "ffmpeg"  # writes half a file, then fails
    failing.write_text('#!/bin/sh\nfor arg; do last="$arg"; done\necho half > "$last"\nexit 1\n')
    failing.chmod(0o755)
    monkeypatch.setattr(segment_previews, "ffmpeg_exe", lambda: str(failing))
    assert make_preview(folder, 24, 3) is None  # logged; nothing left behind, the job goes on
    assert not list(folder.glob("*.mp4")) and finished_previews(work) == []

    def no_ffmpeg():
        raise RuntimeError("no ffmpeg here")

    monkeypatch.setattr(segment_previews, "ffmpeg_exe", no_ffmpeg)
    assert make_preview(folder, 24, 3) is None


@pytest.mark.tiny
def test_the_motion_stage_has_each_preview_ready_when_it_reports_the_segment(tmp_path, studio_home) -> None:
    from backend.memory import MemoryManager, detect_hardware
    from backend.prompting import analyze_prompt
    from backend.spec import JobSpec
    from backend.stages import motion
    from backend.stages.context import StageContext

    spec = JobSpec(prompt="a red fox runs across a snowy field", model_set="tiny", seed=5, engine="ltx",
                   duration=2.0, fps=24).validate()
    choice = motion.choose_motion("tiny", "ltx", "standard", 24, detect_hardware())
    work = tmp_path / "work"
    seen: dict[str, list[tuple[int, int]]] = {}

    def sink(fraction, message, step, total, preview) -> None:
        if message.endswith(" done"):  # "segment k/n done"
            seen[message] = [(p.number, p.total) for p in finished_previews(work)]

    ctx = StageContext("job", "motion", spec, work, threading.Event(), sink,
                       MemoryManager(detect_hardware(), studio_home.models))
    keyframes = []
    for i in range(3):
        path = tmp_path / f"keyframe_{i:03d}.png"
        Image.fromarray(np.full((choice.size[1], choice.size[0], 3), 60 * i, np.uint8)).save(path)
        keyframes.append(path)
    result = motion.run(ctx, motion.MotionInputs(analyze_prompt(spec.prompt), keyframes, 48, choice))
    assert len(result.segments) == 2
    assert seen == {"segment 1/2 done": [(1, 2)], "segment 2/2 done": [(1, 2), (2, 2)]}
    for clip, preview in zip(result.segments, finished_previews(work)):
        info = probe_video(preview.path)
        assert info.codec == "h264" and info.frames == len(clip) and info.fps == choice.fps
    assert all(len(list(c.frame_paths[0].parent.glob("*.png"))) == len(c) for c in result.segments)

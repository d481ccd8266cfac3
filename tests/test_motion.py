"""Motion: plans that honour the storyboard, engine choice and substitution, and the engines on the tiny set."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from backend.memory import MemoryManager, detect_hardware
from backend.prompting import analyze_prompt
from backend.spec import JobSpec
from backend.stages import motion, motion_plan, motion_segments
from backend.stages.context import StageContext
from backend.stages.engines import ENGINES, Conditioning
from backend.stages.engines.base import round_to_4k_plus_1


def test_first_frame_segments_split_the_frames_over_keyframe_gaps():
    segments = motion_plan.plan_first_frame(5, 70)
    assert [s.frames for s in segments] == [18, 17, 17, 18]
    assert sum(s.frames for s in segments) == 70
    assert [(s.first_keyframe, s.last_keyframe) for s in segments] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    single = motion_plan.plan_first_frame(1, 10)
    assert len(single) == 1 and single[0].last_keyframe is None and single[0].frames == 10


def test_keyframes_are_pinned_from_the_first_to_the_last_frame():
    assert motion_plan.keyframe_positions(4, 72) == [0, 24, 47, 71]
    assert motion_plan.keyframe_positions(1, 72) == [0]


def test_one_window_conditions_every_keyframe_at_its_frame():
    (window,) = motion_plan.plan_keyframe_windows(4, 72, 121, 9)
    assert (window.start, window.frames, window.keep_from) == (0, 72, 0)
    assert [(a.keyframe, a.frame) for a in window.anchors] == [(0, 0), (1, 24), (2, 47), (3, 71)]


def test_long_clips_are_windows_that_continue_and_still_hit_every_keyframe():
    windows = motion_plan.plan_keyframe_windows(4, 72, 33, 9)
    assert sum(w.frames for w in windows) == 72 and windows[0].start == 0
    assert all(b.start == a.start + a.frames for a, b in zip(windows, windows[1:]))  # no gap, no repeat
    assert all(w.call_frames <= 33 for w in windows) and all(w.overlap == 9 for w in windows[1:])
    # Each keyframe is a condition once, at its own frame (or already in the carried-over frames).
    pinned = {a.keyframe: w.start + a.frame - w.keep_from for w in windows for a in w.anchors}
    positions = motion_plan.keyframe_positions(4, 72)
    carried = {k for k, p in enumerate(positions) if k not in pinned}
    assert all(pinned[k] == positions[k] for k in pinned)
    assert all(any(w.start - w.overlap <= positions[k] < w.start for w in windows[1:]) for k in carried)


def test_first_last_segments_start_and_end_on_their_keyframes():
    segments = motion_plan.plan_first_last(4, 48)
    positions = motion_plan.keyframe_positions(4, 48)
    assert sum(s.frames for s in segments) == 48
    for s in segments:
        assert s.start + s.frames - 1 == positions[s.last_keyframe]  # ends on the next keyframe
        assert s.start - s.keep_from == positions[s.first_keyframe]  # starts on its own (dropped if shared)


def test_an_extension_continues_from_the_source_frames():
    (shot,) = motion_plan.plan_continuation(40, lead=17)
    assert shot.overlap == 17 and shot.first_keyframe is None and shot.frames == 40
    windows = motion_plan.plan_keyframe_windows(3, 40, 33, 9, lead=9)
    assert windows[0].overlap == 9 and windows[0].keep_from == 8  # frame 0 is the source's last frame
    assert all(a.keyframe != 0 for a in windows[0].anchors)  # keyframe 0 is that frame: no condition


def test_spread_keeps_the_first_and_last_frames():
    assert motion_plan.spread(list(range(9)), 5) == [0, 2, 4, 6, 8]
    assert motion_plan.spread(list(range(4)), 9) == [0, 1, 2, 3]


@pytest.mark.parametrize("wanted, most, expected", [(1, 49, 5), (6, 49, 9), (20, 49, 21), (49, 49, 49),
                                                    (80, 49, 49), (20, 33, 21), (40, 33, 33)])
def test_cogvideox_frame_counts_are_4k_plus_1_within_the_cap(wanted, most, expected):
    assert round_to_4k_plus_1(wanted, most) == expected


def test_the_tail_blends_toward_the_next_keyframe_without_touching_the_start():
    frames = [np.zeros((4, 4, 3), np.uint8) for _ in range(8)]
    target = np.full((4, 4, 3), 200, np.uint8)
    out = motion_segments.blend_tail(frames, target)
    means = [f.mean() for f in out]
    assert means[:6] == [0] * 6
    assert 0 < means[6] < means[7] < 200  # ramps up, the next segment starts at the keyframe itself


def test_a_gpu_too_small_for_svd_gets_the_light_keyframe_engine_and_says_so():
    tiny_gpu = detect_hardware(vram_gb=1.9, ram_gb=32)
    choice = motion.choose_motion("default", "svd", "standard", 24, tiny_gpu)
    assert choice.ref.key == "ltx-2b" and choice.keyframes_for(4, 96) == 4  # the light engine honours keyframes
    assert "low-memory engine" in choice.substitution
    roomy = motion.choose_motion("default", "svd", "standard", 24, detect_hardware(vram_gb=24, ram_gb=64))
    assert roomy.ref.key == "svd-xt" and roomy.substitution is None and roomy.size == (1024, 576)
    assert roomy.fps == 7  # SVD makes 7 fps whatever is asked; the finish converts


def test_auto_picks_a_keyframe_faithful_engine_and_says_why():
    gpu = detect_hardware(vram_gb=24, ram_gb=64)
    choice = motion.choose_motion("default", "auto", "standard", 30, gpu)
    assert choice.engine.conditioning == Conditioning.KEYFRAMES and choice.substitution is None
    assert "automatic" in choice.reason and choice.fps == 30  # LTX makes 24-30 fps natively
    quick = motion.choose_motion("default", "ltx", "quick", 24, detect_hardware(vram_gb=80, ram_gb=256))
    assert quick.ref.key == "ltx-13b-distilled" and quick.ref.default_steps == 8
    sky = motion.choose_motion("tiny", "skyreels", "standard", 24, gpu)
    assert sky.keyframes_for(4, 72) == 1  # a continuation engine only uses the first keyframe


def _storyboard(folder, count: int, size=(64, 64)) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(count):
        path = folder / f"keyframe_{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def call_log(monkeypatch):
    """Every engine call's request, in order (the pipeline still runs)."""
    calls = []
    for name, engine in ENGINES.items():
        real = type(engine).generate

        def spy(self, pipe, ref, request, plan, callback, generator, real=real):
            calls.append(request)
            return real(self, pipe, ref, request, plan, callback, generator)

        monkeypatch.setattr(type(engine), "generate", spy)
    return calls


def _run_motion(tmp_path, studio_home, engine: str, keyframes: int, frames: int, fps: int = 24, tail=()):
    spec = JobSpec(prompt="a red fox runs across a snowy field", model_set="tiny", seed=5, engine=engine,
                   duration=frames / fps, fps=fps).validate()
    choice = motion.choose_motion("tiny", engine, "standard", fps, detect_hardware())
    logged: list[str] = []
    ctx = StageContext("job", "motion", spec, tmp_path / "work", threading.Event(), lambda *args: None,
                       MemoryManager(detect_hardware(), studio_home.models), notes=logged.append)
    paths = _storyboard(tmp_path / "kf", keyframes, choice.size)
    result = motion.run(ctx, motion.MotionInputs(analyze_prompt(spec.prompt), paths, frames, choice, tuple(tail)))
    return result, logged


@pytest.mark.tiny
def test_ltx_is_told_every_keyframe_at_its_frame_index(tmp_path, studio_home, call_log):
    result, _ = _run_motion(tmp_path, studio_home, "ltx", 4, 72)
    record = result.record
    assert record.conditioning == "keyframes" and record.join.startswith("conditioned")
    assert "crossfade" not in record.join
    assert [(c.keyframe, c.frame_index) for c in record.conditions] == [(0, 0), (1, 24), (2, 47), (3, 71)]
    assert sum(len(clip) for clip in result.segments) == 72 and result.fps == 24
    # The calls themselves: each keyframe image went to a call at its frame of that call's output.
    told = [(call.conditions, call.video) for call in call_log]
    assert sum(len(conditions) for conditions, _ in told) == 4
    assert all(video for _, video in told[1:])  # later windows continue from the previous window's frames


@pytest.mark.tiny
def test_wan_segments_get_their_start_and_end_keyframes(tmp_path, studio_home, call_log):
    result, _ = _run_motion(tmp_path, studio_home, "wan", 4, 48, fps=16)
    record = result.record
    assert record.conditioning == "first_last" and "crossfade" not in record.join
    assert len(result.segments) == 3 and sum(len(c) for c in result.segments) == 48
    assert [(c.keyframe, c.kind) for c in record.conditions] == [
        (0, "first"), (1, "last"), (1, "first"), (2, "last"), (2, "first"), (3, "last")]
    assert all(call.first is not None and call.last is not None for call in call_log)


@pytest.mark.tiny
def test_skyreels_continues_a_source_video_from_its_last_frames(tmp_path, studio_home, call_log):
    tail = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(17)]  # at the tiny model's size
    result, _ = _run_motion(tmp_path, studio_home, "skyreels", 1, 25, tail=[Image.fromarray(f) for f in tail])
    record = result.record
    assert record.conditioning == "continuation" and record.conditions[0].kind == "source video"
    (call,) = call_log
    assert len(call.video) == 17 and call.first is None  # the source's frames, not one image
    first = np.asarray(Image.open(result.segments[0].frame_paths[0]))
    assert np.array_equal(first, tail[-1])  # frame 0 repeats the source's last frame (assemble drops it)

"""Motion planning: segments, chunk sizes, joins, and the low-memory engine substitution."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from backend.memory import MemoryManager, detect_hardware
from backend.memory.plans import MemoryPlan
from backend.models.registry import MODELS
from backend.prompting import analyze_prompt
from backend.spec import JobSpec
from backend.stages import motion
from backend.stages.context import StageContext
from backend.stages.motion_engines import round_to_4k_plus_1


def test_segments_split_the_frames_over_keyframe_gaps():
    keyframes = [Path(f"k{i}.png") for i in range(5)]
    segments = motion.plan_segments(keyframes, 70)
    assert [s.frames for s in segments] == [18, 17, 17, 18]
    assert sum(s.frames for s in segments) == 70
    assert segments[-1].next_keyframe == keyframes[-1]
    single = motion.plan_segments(keyframes[:1], 10)
    assert len(single) == 1 and single[0].next_keyframe is None and single[0].frames == 10


@pytest.mark.parametrize("wanted, most, expected", [(1, 49, 5), (6, 49, 9), (20, 49, 21), (49, 49, 49),
                                                    (80, 49, 49), (20, 33, 21), (40, 33, 33)])
def test_cogvideox_frame_counts_are_4k_plus_1_within_the_cap(wanted, most, expected):
    assert round_to_4k_plus_1(wanted, most) == expected


def test_the_tail_blends_toward_the_next_keyframe_without_touching_the_start():
    frames = [np.zeros((4, 4, 3), np.uint8) for _ in range(8)]
    target = np.full((4, 4, 3), 200, np.uint8)
    out = motion.blend_tail(frames, target)
    means = [f.mean() for f in out]
    assert means[:6] == [0] * 6
    assert 0 < means[6] < means[7] < 200  # ramps up, the next segment starts at the keyframe itself


def test_a_gpu_too_small_for_svd_gets_the_low_memory_engine_and_says_so():
    tiny_gpu = detect_hardware(vram_gb=1.9, ram_gb=32)
    choice = motion.choose_motion("default", "svd", tiny_gpu)
    assert choice.ref.key == "text2video-ms" and not choice.uses_keyframes
    assert "low-memory engine" in choice.substitution
    roomy = motion.choose_motion("default", "svd", detect_hardware(vram_gb=24, ram_gb=64))
    assert roomy.ref.key == "svd-xt" and roomy.substitution is None and roomy.size == (1024, 576)


@pytest.mark.tiny
def test_the_low_memory_engine_makes_video_from_the_prompt_alone(tmp_path, studio_home):
    """Run the real TextToVideoSDPipeline (tiny weights) through the motion stage, in two chunks."""
    ref = MODELS["tiny-text2video-ms"]
    plan = MemoryPlan(level="cpu", device="cpu", dtype="float32")
    choice = motion.MotionChoice(ref, plan, (ref.width, ref.height), ref.frames, "test: substituted")
    spec = JobSpec(prompt="a paper boat drifting on a pond", model_set="tiny", seed=5, duration=3).validate()
    logged: list[str] = []
    ctx = StageContext("job", "motion", spec, tmp_path / "work", threading.Event(), lambda *args: None,
                       MemoryManager(detect_hardware(), studio_home.models), notes=logged.append)
    result = motion.run(ctx, motion.MotionInputs(analyze_prompt(spec.prompt), [], frames_needed=12, choice=choice))
    assert result.record.engine == "text2video-ms" and result.size == (64, 64)
    assert len(result.segments) == 1 and len(result.segments[0]) == 12  # 8 + 4 frames, two chunks
    assert result.record.substitution == "test: substituted"
    assert logged == ["motion: test: substituted"]  # the substitution reaches the job log
    assert len(result.record.segment_seeds[0]) == 2
    assert "independently generated chunks" in result.record.join

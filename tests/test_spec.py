"""JobSpec validation: bad input gets a clear message naming the field."""

from __future__ import annotations

import math

import pytest

from backend.errors import SpecError
from backend.spec import FinishOptions, JobSpec


def error_for(**changes) -> SpecError:
    base = {"prompt": "ocean waves"}
    base.update(changes)
    with pytest.raises(SpecError) as info:
        JobSpec(**base).validate()
    return info.value


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"prompt": ""}, "prompt", "empty"),
        ({"prompt": "   \n\t "}, "prompt", "empty"),
        ({"prompt": "x" * 20_000}, "prompt", "20,000 characters"),
        ({"prompt": "waves\x00crashing"}, "prompt", "control characters"),
        ({"prompt": "bell\x07"}, "prompt", "control characters"),
        ({"duration": 0}, "duration", "between"),
        ({"duration": -3.0}, "duration", "between"),
        ({"duration": 10_000.0}, "duration", "between"),
        ({"duration": math.nan}, "duration", "finite"),
        ({"duration": math.inf}, "duration", "finite"),
        ({"fps": 0}, "fps", "between"),
        ({"fps": 1000}, "fps", "between"),
        ({"fps": 24.5}, "fps", "whole number"),
        ({"width": 100_000}, "width", "between"),
        ({"width": 1921}, "width", "even"),
        ({"seed": -1}, "seed", "between"),
        ({"steps": 0}, "steps", "between"),
        ({"mode": "i2v"}, "image", "needs an image"),
        ({"mode": "extend"}, "video", "needs a video"),
        ({"mode": "dance"}, "mode", "t2v"),
        ({"engine": "sora"}, "engine", "svd"),
        ({"motion_strength": 2.0}, "motion_strength", "between"),
        ({"finish": FinishOptions(grade="sepia")}, "finish.grade", "cinematic"),
        ({"finish": FinishOptions(crf=99)}, "finish.crf", "between"),
    ],
)
def test_invalid_specs_are_rejected_with_a_clear_message(changes, field, words):
    error = error_for(**changes)
    assert error.field == field
    assert words in error.message


@pytest.mark.parametrize("prompt", ["مرحبا بالعالم — waves 🌊", "<script>alert(1)</script> on a beach", "line one\nline two"])
def test_unusual_but_valid_prompts_are_kept_verbatim(prompt):
    assert JobSpec(prompt=prompt).validate().prompt == prompt.strip()


def test_seed_is_drawn_once_and_then_kept():
    spec = JobSpec(prompt="x").with_seed()
    assert spec.seed is not None and 0 <= spec.seed < 2**32
    assert spec.with_seed().seed == spec.seed


def test_keyframe_count_follows_duration_and_preset():
    assert JobSpec(prompt="x", duration=10).keyframe_count() == 5
    assert JobSpec(prompt="x", duration=2).keyframe_count() == 2
    assert JobSpec(prompt="x", duration=120).keyframe_count() == 8
    assert JobSpec(prompt="x", duration=10, keyframes=3).keyframe_count() == 3


def test_round_trip_through_json_dict():
    spec = JobSpec(prompt="x", seed=5, finish=FinishOptions(grade="warm", sharpen=0.8)).validate()
    assert JobSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "data, field",
    [
        ([1, 2], "spec"),
        ({"prompt": "x", "colour": "red"}, "colour"),
        ({"prompt": "x", "duration": "long"}, "duration"),
        ({"prompt": "x", "fps": True}, "fps"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": "x", "finish": {"grade": 3}}, "finish.grade"),
        ({"prompt": "x", "finish": {"wobble": 1}}, "finish.wobble"),
        ({"prompt": "x", "post": {"grade": 3}}, "finish.grade"),
        ({"duration": 3}, "prompt"),
    ],
)
def test_from_dict_rejects_unknown_keys_and_wrong_types(data, field):
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict(data)
    assert info.value.field == field


def test_an_edited_enhanced_prompt_is_validated_and_kept():
    spec = JobSpec(prompt="a cat", enhanced_prompt="  a cat, oil painting ").validate()
    assert spec.enhanced_prompt == "a cat, oil painting" and spec.prompt == "a cat"
    assert JobSpec(prompt="a cat", enhanced_prompt="   ").validate().enhanced_prompt is None
    with pytest.raises(SpecError) as info:
        JobSpec(prompt="a cat", enhanced_prompt="bad\x00").validate()
    assert info.value.field == "enhanced_prompt"

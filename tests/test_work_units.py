"""One rule for step counts and work units: stages, pre-flight and the ETA agree (the Quick preset too)."""

from __future__ import annotations

import pytest

from backend.jobs.orchestrator import VideoGenerator
from backend.memory.hardware import detect_hardware
from backend.memory.preflight import preflight
from backend.models.registry import keyframe_model_for, model_for
from backend.record import JobRecord, KeyframesRecord, MotionRecord, SegmentRecord, StageRecords
from backend.spec import JobSpec
from backend.work import TINY_STEPS, denoising_steps, measured_units, planned_units

pytestmark = pytest.mark.unit


def spec(**changes: object) -> JobSpec:
    return JobSpec(prompt="ocean waves", **changes).validate()  # type: ignore[arg-type]


def test_the_step_rule_user_then_model_then_preset() -> None:
    turbo, sdxl = keyframe_model_for("default", "quick"), keyframe_model_for("default", "standard")
    assert turbo.default_steps == 4 and sdxl.default_steps is None
    assert denoising_steps(spec(preset="quick"), turbo, "keyframes") == 4  # the distilled model's own count
    assert denoising_steps(spec(preset="quick", steps=9), turbo, "keyframes") == 9  # the user's number wins
    assert denoising_steps(spec(), sdxl, "keyframes") == spec().preset_values.keyframe_steps
    assert denoising_steps(spec(), model_for("default", "svd"), "motion") == spec().preset_values.motion_steps
    assert denoising_steps(spec(model_set="tiny"), keyframe_model_for("tiny", "standard"), "keyframes") == TINY_STEPS


def test_planned_units_for_the_quick_preset_are_four_step_work() -> None:
    quick = spec(preset="quick")
    assert planned_units(quick, "keyframes") == quick.keyframe_count() * 4
    standard = spec(engine="svd")
    assert planned_units(standard, "keyframes") == standard.keyframe_count() * 30
    svd = model_for("default", "svd")
    assert planned_units(standard, "motion") == standard.duration * svd.fps * 25
    assert planned_units(standard, "finish") == standard.total_frames


def test_measured_units_count_what_the_stages_did() -> None:
    record = JobRecord(id="j", spec={}, stages=StageRecords(
        keyframes=KeyframesRecord(steps=4, prompts=["a", "b", "c"]),
        motion=MotionRecord(steps=2, segments=[SegmentRecord(8), SegmentRecord(6)])))
    assert measured_units(record) == {"keyframes": 12.0, "motion": 28.0}


def test_preflight_prices_quick_at_the_models_step_count() -> None:
    gpu = detect_hardware(vram_gb=24, ram_gb=64)
    quick = preflight(spec(preset="quick", keyframes=4), gpu).stages[0]
    four = preflight(spec(preset="quick", keyframes=4, steps=4), gpu).stages[0]
    eight = preflight(spec(preset="quick", keyframes=4, steps=8), gpu).stages[0]
    assert quick.model == "sdxl-turbo" and quick.eta_seconds == four.eta_seconds < eight.eta_seconds


def test_the_eta_of_a_quick_job_uses_its_own_calibration_and_units(studio_home) -> None:
    gen = VideoGenerator(studio_home, hardware=detect_hardware(vram_gb=24, ram_gb=64), start_worker=False)
    quick, standard = spec(preset="quick"), spec()
    quick_key, standard_key = gen.calibration.key(quick, "keyframes"), gen.calibration.key(standard, "keyframes")
    assert "sdxl-turbo" in quick_key and quick_key != standard_key  # Turbo at 512² is not SDXL at 1024²
    gen.store.record_timing(quick_key, 0.5)  # seconds per keyframe step, measured by an earlier quick job
    assert gen.calibration.estimates(quick)["keyframes"] == pytest.approx(0.5 * quick.keyframe_count() * 4)
    assert gen.calibration.estimates(standard)["keyframes"] is None  # nothing measured for SDXL yet
    gen.shutdown()

"""Memory plans for simulated GPUs (6 to 80 GB) and the CPU: levels, dtypes, caps, estimates, pre-flight."""

from __future__ import annotations

import argparse
import json

import pytest

from backend.cli.plan import add_parser as add_plan_parser
from backend.cli.plan import run as run_plan
from backend.memory.estimates import estimate, eta_class, native_workload
from backend.memory.hardware import detect_hardware
from backend.memory.plans import (
    LEVELS,
    MemoryPlan,
    Workload,
    apply_plan,
    choose_plan,
    fit_plan,
    min_vram_by_level,
    vram_budget_gb,
)
from backend.memory.preflight import motion_model, preflight
from backend.models.registry import MODELS
from backend.spec import JobSpec

TIERS = (6, 8, 12, 16, 24, 48, 80)
REAL = ("sdxl-base", "sdxl-turbo", "svd-xt", "cogvideox-5b-i2v", "ltx-2b", "ltx-13b-distilled", "wan-flf2v-14b",
        "skyreels-v2-df-1.3b")

# What the planner must choose at the native size (docs/MEMORY.md shows the same table).
EXPECTED = {
    6: {"sdxl-base": "group_offload", "svd-xt": "group_offload", "cogvideox-5b-i2v": "group_offload"},
    8: {"sdxl-base": "model_offload", "svd-xt": "model_offload", "cogvideox-5b-i2v": "group_offload"},
    12: {"sdxl-base": "gpu", "svd-xt": "gpu", "cogvideox-5b-i2v": "group_offload"},
    16: {"sdxl-base": "gpu", "svd-xt": "gpu", "cogvideox-5b-i2v": "model_offload"},
    24: {"sdxl-base": "gpu", "svd-xt": "gpu", "cogvideox-5b-i2v": "model_offload"},
    48: {"sdxl-base": "gpu", "svd-xt": "gpu", "cogvideox-5b-i2v": "gpu"},
    80: {"sdxl-base": "gpu", "svd-xt": "gpu", "cogvideox-5b-i2v": "gpu"},
}


def gpu(vram: float, **kwargs: object):
    return detect_hardware(vram_gb=vram, ram_gb=64, **kwargs)


@pytest.mark.parametrize("vram", TIERS)
def test_each_tier_gets_the_expected_levels_and_they_fit(vram: int) -> None:
    hardware = gpu(vram)
    for key, level in EXPECTED[vram].items():
        plan = fit_plan(hardware, key)
        assert plan.level == level, (vram, key, plan.reason)
        assert plan.fits and not plan.capped
        assert 0 < plan.est_vram_gb <= vram_budget_gb(hardware)
        assert plan.device == "cuda" and plan.dtype == "bfloat16"


def test_tiers_give_distinct_plans() -> None:
    """What `plan` prints differs per tier: the levels, or (48 vs 80 GB) what stays resident."""
    signatures = set()
    for vram in TIERS:
        hardware = gpu(vram)
        levels = tuple(fit_plan(hardware, key).describe() for key in REAL)
        residency = tuple(preflight(spec(engine=e), hardware).stage("motion").residency for e in ("svd", "cogvideox"))
        signatures.add(levels + residency)
    assert len(signatures) == len(TIERS)


def test_more_vram_never_means_a_slower_level() -> None:
    order = {level: i for i, level in enumerate(LEVELS)}
    for key in REAL:
        levels = [order[fit_plan(gpu(v), key).level] for v in TIERS]
        assert levels == sorted(levels, reverse=True), key


def test_the_fastest_fitting_plan_wins() -> None:
    """The choice comes from the estimate: each plan tried before the chosen one is estimated too big."""
    hardware = gpu(8)
    chosen = choose_plan(hardware, "svd-xt")
    from backend.memory.plans import candidate_plans

    for candidate in candidate_plans(hardware, MODELS["svd-xt"]):
        if candidate.level == chosen.level and candidate.forward_chunking == chosen.forward_chunking:
            break
        assert estimate(MODELS["svd-xt"], candidate).vram_peak_gb > vram_budget_gb(hardware)


def test_cpu_plan_is_fp32_on_the_cpu() -> None:
    hardware = detect_hardware(vram_gb=0, ram_gb=64)
    assert not hardware.has_cuda
    for key in REAL:
        plan = fit_plan(hardware, key)
        assert (plan.level, plan.device, plan.dtype) == ("cpu", "cpu", "float32")
        assert plan.est_vram_gb == 0 and plan.est_ram_gb > 0
        assert plan.step_down() is None


def test_tiny_models_always_get_the_cpu_plan() -> None:
    plan = fit_plan(gpu(80), "tiny-svd")
    assert (plan.level, plan.dtype) == ("cpu", "float32") and "tiny" in plan.reason


def test_dtype_follows_the_gpu_generation() -> None:
    assert fit_plan(gpu(24, compute_capability=(8, 6)), "sdxl-base").dtype == "bfloat16"
    assert fit_plan(gpu(24, compute_capability=(7, 5)), "sdxl-base").dtype == "float16"


def test_fp16_upcasts_the_sdxl_vae_so_needs_more() -> None:
    plan = MemoryPlan("gpu", "cuda", "float16", model="sdxl-base")
    bf16 = MemoryPlan("gpu", "cuda", "bfloat16", model="sdxl-base")
    assert estimate(MODELS["sdxl-base"], plan).vram_peak_gb > estimate(MODELS["sdxl-base"], bf16).vram_peak_gb


def test_estimate_grows_with_resolution_and_frames() -> None:
    ref = MODELS["svd-xt"]
    plan = MemoryPlan("model_offload", "cuda", "bfloat16", model=ref.key)
    base = estimate(ref, plan, Workload(1024, 576, 25)).vram_peak_gb
    assert estimate(ref, plan, Workload(1024, 576, 14)).vram_peak_gb < base
    assert estimate(ref, plan, Workload(768, 432, 25)).vram_peak_gb < base
    assert estimate(ref, plan, Workload(1280, 720, 25)).vram_peak_gb > base


def test_estimates_match_published_anchors() -> None:
    """CogVideoX-5B: ~26 GB without offload (VAE tiled), ~5 GB sequential; SVD under 8 GB with model offload."""
    cog = MODELS["cogvideox-5b-i2v"]
    tiled = MemoryPlan("gpu", "cuda", "bfloat16", vae_tiling=True, vae_slicing=True, model=cog.key)
    assert 23 < estimate(cog, tiled).vram_peak_gb < 29
    lowest = MemoryPlan("sequential_offload", "cuda", "bfloat16", vae_tiling=True, vae_slicing=True, model=cog.key)
    assert 4 < estimate(cog, lowest).vram_peak_gb < 6
    svd = MemoryPlan("model_offload", "cuda", "bfloat16", forward_chunking=True, decode_chunk_size=2, model="svd-xt")
    assert estimate(MODELS["svd-xt"], svd).vram_peak_gb < 8


def test_min_vram_falls_with_each_level() -> None:
    for key in REAL:
        need = min_vram_by_level(MODELS[key])
        values = [need[level] for level in LEVELS]
        assert values == sorted(values, reverse=True) and values[-1] > 0, key
    assert min_vram_by_level(MODELS["tiny-sdxl"]) == {}


def test_caps_frames_then_resolution_when_even_sequential_cannot_fit() -> None:
    plan = fit_plan(gpu(4), "svd-xt")
    assert plan.fits and plan.capped and plan.cap_frames == 14 and (plan.cap_width, plan.cap_height) == (1024, 576)
    assert "capped" in plan.reason
    smaller = fit_plan(gpu(2.2), "svd-xt")
    assert smaller.fits and (smaller.cap_width, smaller.cap_frames) == (768, 14)


def test_nothing_fits_says_so() -> None:
    plan = fit_plan(gpu(1), "cogvideox-5b-i2v")
    assert not plan.fits and plan.level == "sequential_offload" and "does not fit" in plan.reason


def test_reserve_leaves_vram_to_other_programs() -> None:
    shared = gpu(24, reserve_gb=16)
    assert shared.usable_vram_gb == 8
    assert fit_plan(shared, "sdxl-base").level == fit_plan(gpu(8), "sdxl-base").level


def test_step_down_walks_every_level_with_all_reliefs() -> None:
    plan = choose_plan(gpu(80), "svd-xt")
    seen = [plan.level]
    while (plan := plan.step_down()) is not None:
        seen.append(plan.level)
        assert plan.forward_chunking and plan.decode_chunk_size == 2 and "stepped down" in plan.reason
        assert plan.est_vram_gb > 0
    assert seen == list(LEVELS)


def test_tiled_decode_relief_per_vae_kind() -> None:
    sdxl = MemoryPlan("gpu", "cuda", "bfloat16", model="sdxl-base").with_tiled_decode()
    assert sdxl is not None and sdxl.vae_tiling and sdxl.level == "gpu"
    assert sdxl.with_tiled_decode() is None  # nothing lighter left at this level
    svd = MemoryPlan("gpu", "cuda", "bfloat16", decode_chunk_size=8, model="svd-xt")
    chunks = []
    while (svd := svd.with_tiled_decode()) is not None:
        assert not svd.vae_tiling  # SVD's temporal decoder cannot tile: smaller chunks instead
        chunks.append(svd.decode_chunk_size)
    assert chunks == [4, 2, 1]


class PlacementRecorder:
    """Records the diffusers placement calls apply_plan makes (no VAE or UNet: placement only)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str):
        if name not in ("to", "enable_model_cpu_offload", "enable_group_offload", "enable_sequential_cpu_offload"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


@pytest.mark.parametrize(("level", "call"), [
    ("cpu", "to"), ("gpu", "to"), ("model_offload", "enable_model_cpu_offload"),
    ("group_offload", "enable_group_offload"), ("sequential_offload", "enable_sequential_cpu_offload"),
])
def test_each_level_is_exactly_one_diffusers_call(level: str, call: str) -> None:
    pipe = PlacementRecorder()
    apply_plan(pipe, MemoryPlan(level, "cpu" if level == "cpu" else "cuda", "bfloat16"))
    ((name, args, kwargs),) = pipe.calls
    assert name == call
    if level == "group_offload":
        assert kwargs["offload_type"] == "block_level" and kwargs["use_stream"] and str(kwargs["onload_device"]) == "cuda"
    if name == "to":
        assert args == ("cpu" if level == "cpu" else "cuda",)


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown memory level"):
        apply_plan(PlacementRecorder(), MemoryPlan("turbo", "cuda", "bfloat16"))


def test_plan_round_trips_through_json() -> None:
    plan = fit_plan(gpu(4), "svd-xt")
    data = json.loads(json.dumps(plan.to_dict()))
    assert MemoryPlan.from_dict(data) == plan


def test_eta_classes() -> None:
    assert [eta_class(s) for s in (5, 300, 3600)] == ["seconds", "minutes", "long"]


def test_native_workload_uses_cfg() -> None:
    assert native_workload(MODELS["svd-xt"]) == Workload(1024, 576, 25, 2)
    assert native_workload(MODELS["sdxl-turbo"]).batch == 1


# --- pre-flight -------------------------------------------------------------------------------------


def spec(**changes: object) -> JobSpec:
    """A job that asks for SVD unless told otherwise (most plans here are about SVD and CogVideoX)."""
    values: dict = {"engine": "svd", **changes}
    return JobSpec(prompt="ocean waves", **values).validate()


def test_preflight_reports_every_stage() -> None:
    result = preflight(spec(), gpu(8))
    assert [s.stage for s in result.stages] == ["keyframes", "motion", "finish"]
    keyframes, motion, post = result.stages
    assert (keyframes.model, keyframes.level) == ("sdxl-base", "model_offload")
    assert (motion.model, motion.level) == ("svd-xt", "model_offload")
    assert motion.vram_peak_gb > 0 and motion.ram_peak_gb > 0 and motion.eta_class in ("seconds", "minutes", "long")
    assert post.model == "ffmpeg" and post.vram_peak_gb == 0
    assert result.fits and result.fallback is None
    text = result.text()
    assert "keyframes" in text and "motion" in text and "finish" in text and "model_offload" in text
    json.dumps(result.to_dict())


def test_preflight_residency_depends_on_room() -> None:
    assert "keeps sdxl-base" in preflight(spec(), gpu(24)).stage("motion").residency
    assert "unloads sdxl-base" in preflight(spec(), gpu(12)).stage("motion").residency
    assert "unloads sdxl-base" in preflight(spec(engine="cogvideox"), gpu(48)).stage("motion").residency
    assert "keeps sdxl-base" in preflight(spec(engine="cogvideox"), gpu(80)).stage("motion").residency


def test_preflight_uses_the_light_keyframe_engine_when_svd_cannot_fit() -> None:
    result = preflight(spec(), gpu(1.5))
    assert result.engine == "ltx-2b" and result.fallback == "ltx-2b"
    assert result.stage("motion").model == "ltx-2b" and result.stage("keyframes").level != "skipped"
    assert any("cannot fit even with sequential offload" in w and "low-memory engine ltx-2b will be used" in w
               for w in result.warnings)


def test_cogvideox_falls_back_to_the_light_keyframe_engine_first() -> None:
    ref, plan, warning, _ = motion_model(gpu(4), "default", "cogvideox")
    assert ref.key == "ltx-2b" and plan.fits and "ltx-2b will be used" in (warning or "")


def test_auto_takes_the_most_faithful_engine_that_fits_and_says_why() -> None:
    result = preflight(spec(engine="auto"), gpu(24))
    assert result.engine == "ltx-2b" and result.fallback is None
    assert any("chosen automatically" in w for w in result.warnings)
    assert preflight(spec(engine="skyreels"), gpu(24)).stage("keyframes").calls == 1  # it uses the first only


def test_preflight_reports_caps() -> None:
    motion = preflight(spec(), gpu(4)).stage("motion")
    assert motion.cap == {"width": 1024, "height": 576, "frames": 14}
    assert any("capped" in w for w in motion.warnings)


def test_preflight_quick_preset_uses_sdxl_turbo() -> None:
    assert preflight(spec(preset="quick"), gpu(8)).stage("keyframes").model == "sdxl-turbo"


def test_preflight_for_the_tiny_set_is_the_cpu_plan() -> None:
    result = preflight(spec(model_set="tiny"), gpu(24))
    for stage in result.stages[:2]:
        assert stage.level == "cpu" and stage.model.startswith("tiny-")
        assert any("noise" in w for w in stage.warnings)


def test_preflight_i2v_keeps_the_uploaded_keyframe() -> None:
    t2v = preflight(spec(keyframes=3), gpu(24)).stage("keyframes")
    i2v = preflight(spec(mode="i2v", image="x.png", keyframes=3), gpu(24)).stage("keyframes")
    assert (t2v.calls, i2v.calls) == (3, 2)


def test_preflight_on_the_cpu_flags_what_ram_cannot_hold() -> None:
    result = preflight(spec(engine="cogvideox"), detect_hardware(vram_gb=0, ram_gb=24))
    assert result.engine == "svd-xt" and result.stage("motion").level == "cpu"
    assert any("CogVideoX" in w for w in result.warnings)


# --- `python -m backend plan` -----------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="backend")
    add_plan_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert run_plan(parse("plan", *argv, "--json")) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_json_for_a_simulated_8_gb_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    data = plan_json(capsys, "--vram-gb", "8")
    pre = data["preflight"]
    assert pre["hardware"]["simulated"] and pre["hardware"]["vram_total_gb"] == 8
    stages = {s["stage"]: s for s in pre["stages"]}
    # The default engine is automatic: the keyframe engine (LTX-Video 2B) fits an 8 GB card.
    assert stages["keyframes"]["level"] == "model_offload" and stages["motion"]["model"] == "ltx-2b"
    assert stages["motion"]["vram_peak_gb"] > 0 and stages["motion"]["eta_class"] in ("seconds", "minutes", "long")
    assert {row["role"] for row in data["models"]} >= {"ltx", "wan", "skyreels", "svd", "cogvideox"}


def test_plan_differs_across_tiers(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = set()
    for vram in ("6", "8", "12", "16", "24", "48", "80", "0"):
        data = plan_json(capsys, "--vram-gb", vram, "--ram-gb", "64", "--engine", "cogvideox")
        outputs.add(json.dumps([(s["level"], s["residency"]) for s in data["preflight"]["stages"]]
                               + [row["settings"] for row in data["models"]]))
    assert len(outputs) == 8


def test_plan_text_for_the_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_plan(parse("plan", "--vram-gb", "0", "--ram-gb", "32")) == 0
    out = capsys.readouterr().out
    assert "CPU only" in out and "keyframes" in out and "float32" in out and "Every engine" in out


def test_plan_rejects_bad_input_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_plan(parse("plan", "--duration", "9999")) == 2
    assert capsys.readouterr().err.startswith("error: 'duration' must be between")
    assert run_plan(parse("plan", "--vram-gb", "-3")) == 2
    with pytest.raises(SystemExit):
        parse("plan", "--compute-capability", "eight")

"""The GPU benchmark harness (bench.pipeline) at --size tiny on the CPU: structure and sanity of its report.

The harness runs in-process with the tiny test set (output is noise): every stage through the studio's
own code and as a plain diffusers call, the whole video through JobRunner, the report rendered as JSON,
text and markdown. CUDA-only sections (memory budgets, fast paths) must be present and marked skipped.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from bench import pipeline, report
from bench.configs import STAGES, PipelineFactory, build_full, condition_images, denoiser_of, plain_call
from bench.flops import DenoiserProbe, Peak, StepClock, Timed, count_flops, mfu, spec_peak, synthetic_flops
from bench.report import FAST_PATH_STAGES
from bench.synthetic import calls_per_step, denoiser_inputs

MODEL_STAGES = ("keyframes", "svd", "cogvideox", "ltx", "skyreels", "wan", "ltx13b")  # the STAGES names, in order
NEW_ENGINES = {"ltx": "ltx-2b", "skyreels": "skyreels-v2-df-1.3b", "wan": "wan-flf2v-14b"}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "report.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_HOME", str(out.parent / "home"))
        assert pipeline.main(["--size", "tiny", "--json", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _rows(report: dict) -> dict[str, dict]:
    """The stage rows by STAGES name (a row's "stage" is its engine: ltx13b's row says "ltx")."""
    rows = report["stages"]
    assert [row["stage"] for row in rows] == [STAGES["tiny"][name].stage for name in MODEL_STAGES] + ["finish"]
    return dict(zip([*MODEL_STAGES, "finish"], rows))


def test_header_says_what_ran(tiny_report: dict) -> None:
    assert tiny_report["schema"] == "bench.pipeline/1"
    assert tiny_report["size"] == "tiny" and tiny_report["device"]["kind"] == "cpu"
    assert tiny_report["command"].startswith("python -m bench.pipeline --size tiny")
    assert tiny_report["device"]["peak_tflops"] > 0 and "measured" in tiny_report["device"]["peak_source"]
    assert {"torch", "diffusers", "transformers", "ffmpeg"} <= set(tiny_report["software"])
    assert "noise" in tiny_report["note"]


def test_every_stage_is_timed_against_its_baseline(tiny_report: dict) -> None:
    assert tuple(STAGES["tiny"]) == tuple(STAGES["full"]) == MODEL_STAGES
    rows = _rows(tiny_report)
    for name, row in rows.items():
        assert row["studio"]["seconds"] > 0 and row["baseline"]["seconds"] > 0, name
        assert _finite(row["ratio"]) and row["ratio"] > 0, name
        assert row["same_work"] is True, name
    for name in MODEL_STAGES:
        row, calls = rows[name], calls_per_step(STAGES["tiny"][name])  # Wan, SkyReels: CFG as two calls
        assert row["steps_run"] == row["steps"] == STAGES["tiny"][name].steps
        assert row["flops_per_step"] > 0 and row["cfg_batch"] == 2 // calls and row["calls_per_step"] == calls, name
        for side in ("studio", "baseline"):
            timed = row[side]
            assert timed["denoiser_calls"] == row["steps"] * calls, (name, side)
            assert timed["seconds_per_step"] > 0 and timed["peak_vram_gb"] is None, (name, side)
            assert timed["flops_per_run"] == row["flops_per_step"] * row["steps"], (name, side)
            assert _finite(timed["mfu"]) and 0 < timed["mfu"], (name, side)
        assert row["studio"]["plan"].startswith("cpu") and row["studio"]["plan"].endswith("(float32)")


def test_whole_video_runs_through_job_runner_and_is_replayed_plainly(tiny_report: dict) -> None:
    video = tiny_report["video"]
    assert "5 keyframes + 4 tiny-svd segments" in video["label"]
    assert video["studio"]["seconds"] > 0 and video["studio"]["pipeline_calls"] == 9
    assert set(video["studio"]["stages"]) >= {"keyframes", "motion", "finish"}
    assert set(video["baseline"]["parts"]) == {"keyframes", "motion", "finish"}
    assert all(seconds > 0 for seconds in video["baseline"]["parts"].values())
    assert _finite(video["ratio"]) and video["same_work"] is True
    assert video["step_downs"] == []


def test_cuda_only_sections_are_present_and_marked_skipped(tiny_report: dict) -> None:
    budgets = tiny_report["budgets"]
    assert budgets["rows"] == [] and "needs CUDA" in budgets["skipped"]
    rows = tiny_report["fast_paths"]
    assert {row["name"] for row in rows} == set(FAST_PATH_STAGES)
    for row in rows:
        assert row["status"] == "skipped: needs CUDA" or row["status"].startswith("n/a"), row
        assert "ratio" not in row and "win" not in row  # nothing claims a win that was not measured
    targets = tiny_report["targets"]
    assert len(targets) == len(report.TARGETS) and all(t["met"] is None for t in targets)


def test_report_renders_as_text_and_markdown(tiny_report: dict) -> None:
    text, markdown = report.render_text(tiny_report), report.render_markdown(tiny_report)
    for title in ("Stages", "Whole video", "Memory budgets", "Fast paths", "Targets"):
        assert title in text and title in markdown
    assert "| keyframes | tiny-sdxl |" in markdown
    for name in NEW_ENGINES:
        assert f"| {name} | {STAGES['tiny'][name].model_key} |" in markdown
    assert "partial" not in tiny_report  # the final write replaces the row-by-row checkpoints
    assert "partial: the run was cut short" in report.render_markdown({**tiny_report, "partial": True})


def test_synthetic_denoiser_inputs_count_the_same_flops_as_the_real_call(tiny_report: dict) -> None:
    """--flops-only counts full-size FLOPs from synthetic inputs; at tiny size they match the captured call."""
    import torch

    from backend.paths import runtime_paths

    factory = PipelineFactory("random", runtime_paths().models, "cpu", torch.float32)
    captured = {name: row.get("flops_per_step") for name, row in _rows(tiny_report).items()}
    for name in MODEL_STAGES:
        shape = STAGES["tiny"][name]
        assert synthetic_flops(shape, denoiser_of(factory.get(shape.model_key))) == captured[name], name


def test_a_captured_call_counts_on_a_meta_twin_as_its_synthetic_inputs_do() -> None:
    """On a GPU the captured call is counted on a weightless meta twin (a Wan call is ~15 s): same FLOPs as the
    synthetic inputs --flops-only uses (both on meta, where attention is counted; the CPU kernel is not)."""
    import torch

    from backend.paths import runtime_paths

    factory = PipelineFactory("random", runtime_paths().models, "cpu", torch.float32)
    for name in NEW_ENGINES:
        shape = replace(STAGES["tiny"][name], steps=2)
        pipe = factory.get(shape.model_key)
        denoiser, images = denoiser_of(pipe), condition_images(shape)
        probe = DenoiserProbe(denoiser)
        plain_call(pipe, shape, images[0], last=images[-1] if len(images) > 1 else None)
        with torch.device("meta"):
            twin = type(denoiser).from_config(denoiser.config).to("meta", denoiser.dtype)
        args, kwargs = denoiser_inputs(shape, twin)
        assert probe.flops_per_call(on_meta=True) == count_flops(lambda: twin(*args, **kwargs)), name
        probe.close()


def test_full_size_configs_have_the_published_parameter_counts() -> None:
    """Built on the meta device (no memory, no GPU): the counts the registry lists for each component."""
    import torch

    from backend.models.registry import find_model
    from backend.paths import runtime_paths

    for key in ("sdxl-base", "svd-xt", "cogvideox-5b-i2v", *NEW_ENGINES.values(), "ltx-13b-distilled"):
        pipe = build_full(key, runtime_paths().models, device="meta", dtype=torch.bfloat16)
        assert type(pipe).__name__ == find_model(key).pipeline_class  # the class the studio loads
        for component in find_model(key).components:
            module = getattr(pipe, component.name)
            params = sum(p.numel() for p in module.parameters()) / 1e9
            assert abs(params - component.params_b) <= 0.002, (key, component.name, params)  # what the planner uses
            assert next(module.parameters()).dtype == torch.bfloat16
    ltx = build_full("ltx-2b", runtime_paths().models, device="meta", dtype=torch.bfloat16)
    assert 1.9 <= sum(p.numel() for p in ltx.transformer.parameters()) / 1e9 <= 2.0  # "2B"
    ltx13b = build_full("ltx-13b-distilled", runtime_paths().models, device="meta", dtype=torch.bfloat16)
    assert 13.0 <= sum(p.numel() for p in ltx13b.transformer.parameters()) / 1e9 <= 13.1  # "13B"
    assert ltx13b.vae.config == ltx.vae.config  # 0.9.7 kept 0.9.5's VAE


def test_the_13b_stage_is_the_quick_preset_of_the_ltx_engine() -> None:
    """ltx13b runs the LTX engine under the quick preset: the step-distilled 13B, no CFG, its registry steps."""
    from backend.models.registry import motion_model_for

    for size, model_set in (("full", "default"), ("tiny", "tiny")):
        shape = STAGES[size]["ltx13b"]
        assert shape.stage == "ltx" and shape.preset == "quick"
        assert motion_model_for(model_set, shape.stage, shape.preset).key == shape.model_key
    full = STAGES["full"]["ltx13b"]
    assert not full.ref.cfg and full.steps == full.ref.default_steps == 8
    assert (full.width, full.height, full.frames) == (full.ref.width, full.ref.height, full.ref.frames)


def test_gpu_check_covers_every_engine_within_the_call_limit() -> None:
    """The one GPU command: every engine named, each part under a timeout, all within ~540 s."""
    script = (REPO / "bench" / "gpu_check.sh").read_text()
    assert "Not covered yet" not in script
    for engine in ("ltx", "skyreels", "wan", "svd", "cogvideox"):
        assert engine in script, engine
    deadline = int(re.search(r"GPU_CHECK_SECONDS:-(\d+)", script).group(1))
    assert deadline <= 540 and "timeout" in script
    parts = re.findall(r"^\s+([\w-]+)\) run \S+ (\d+) ", script, re.MULTILINE)
    assert {"engines", "wan", "engine-budgets", "ltx13b"} <= {name for name, _ in parts}
    default = re.search(r"PARTS:-([\w -]+)\}", script).group(1).split()
    assert default[:4] == ["engines", "wan", "rife", "engine-budgets"] and "ltx13b" in default  # the first call
    for engines in re.findall(r"--engines (\S+)", script):  # every engine a part names is a bench stage
        assert set(engines.split(",")) <= set(pipeline.ENGINE_NAMES), engines
    assert "--engines ltx13b" in script


def test_gpu_peaks_and_mfu() -> None:
    assert spec_peak("NVIDIA H100 80GB HBM3").tflops == 989.4
    assert spec_peak("NVIDIA H100 PCIe").tflops == 756.0
    assert spec_peak("NVIDIA H200").tflops == 989.4
    assert spec_peak("NVIDIA A100-SXM4-80GB").tflops == 312.0
    assert spec_peak("NVIDIA L40S").tflops == 362.05
    assert spec_peak("NVIDIA L4").tflops == 121.0
    assert spec_peak("NVIDIA GeForce RTX 4090").tflops == 165.2
    assert spec_peak("Some Future GPU") is None
    # The anchor: 406 TFLOPs per SDXL image in 2.5 s on an H100 is about 16% MFU.
    assert mfu(406e12, 2.5, Peak(989.4, "spec")) == pytest.approx(0.164, abs=0.001)
    assert mfu(None, 1.0, Peak(1.0, "spec")) is None


def test_timed_scales_missing_steps_by_the_measured_step_time() -> None:
    clock = StepClock("cpu")
    clock.marks = [1.0, 1.5, 2.0]  # 0.5 s per step
    timed = Timed.of(3.0, clock, steps=10, steps_run=3, calls=3, peak_gb=None)
    assert timed.seconds_per_step == 0.5 and timed.seconds == pytest.approx(3.0 + 7 * 0.5)
    assert "scaled" in timed.to_dict()


def test_quality_metrics() -> None:
    import numpy as np

    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    assert report.psnr(frames, frames) == 100.0 and report.ssim(frames, frames) == pytest.approx(1.0)
    noisy = np.clip(frames.astype(int) + 20, 0, 255).astype(np.uint8)
    assert 15 < report.psnr(frames, noisy) < 40 and report.ssim(frames, noisy) < 1.0


def test_full_size_needs_cuda_unless_counting_flops(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit):
        pipeline.parse_args(["--size", "full"])
    assert pipeline.parse_args(["--size", "full", "--flops-only"]).flops_only


def test_the_studio_side_of_ltx13b_runs_the_13b() -> None:
    """Bench.spec carries the stage's preset, so the studio's stage code picks the model the baseline runs."""
    from types import SimpleNamespace

    from backend.models.registry import motion_model_for

    for size, model_set in (("full", "default"), ("tiny", "tiny")):
        for name, shape in STAGES[size].items():
            if name == "keyframes":
                continue
            spec = pipeline.Bench.spec(SimpleNamespace(model_set=model_set), shape, shape.steps)
            assert motion_model_for(model_set, spec.engine, spec.preset).key == shape.model_key, (size, name)

"""Judging and reporting results: frame quality, the fast paths, targets, and the text/markdown tables.

A fast path is a comparison on a fresh pipeline through the same stage code: the run without it, then with
it (after a warm-up that pays for compilation or calibration), with PSNR/SSIM against the run without it.
It "wins" only when more than 3% faster and, for the caching hooks, when the frames stay close (>= 30 dB).
"""

from __future__ import annotations

import ast
import contextlib
import io
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from bench.configs import StageShape, denoiser_of

if TYPE_CHECKING:  # pragma: no cover
    from bench.pipeline import Bench

WIN_RATIO = 0.97  # a fast path "wins" only when it saves more than run-to-run noise (3%)
MIN_PSNR_DB = 30.0  # below this a cached/approximate output is visibly different from the exact one

# Targets from the issue (one H100): (key, description, limit).
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("keyframes", "SDXL keyframe 1024², 30 steps ≤ 1.5 s", 1.5),
    ("svd", "SVD-XT 25 frames 576×1024, 25 steps ≤ 15 s", 15.0),
    ("video", "10 s 1080p30 video, standard preset ≤ 90 s", 90.0),
    ("video_ratio", "studio within 5% of the sum of its baseline stages (ratio ≤ 1.05)", 1.05),
    ("budget_8", "under an 8 GB budget the whole pipeline completes", 1.0),
)


# ---- frame quality (cached vs exact output) ----------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 frame stacks; 100 dB stands for identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else round(min(100.0, 10 * math.log10(255.0**2 / mse)), 3)


def _box_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over every k×k window (valid part), via an integral image."""
    c = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """Mean SSIM of two uint8 frame stacks (N, H, W, 3) on luma, 7×7 uniform windows."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    weights = np.array([0.299, 0.587, 0.114])
    scores = []
    for fa, fb in zip(a, b):
        x, y = fa.astype(np.float64) @ weights, fb.astype(np.float64) @ weights
        k = min(window, *x.shape)
        mx, my = _box_mean(x, k), _box_mean(y, k)
        vx = _box_mean(x * x, k) - mx * mx
        vy = _box_mean(y * y, k) - my * my
        cov = _box_mean(x * y, k) - mx * my
        s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        scores.append(float(s.mean()))
    return round(float(np.mean(scores)), 5)


# ---- targets and rendering --------------------------------------------------------------------------


def evaluate_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value; ``met`` is None where not measured or not comparable."""
    comparable = report["size"] == "full" and report["device"]["kind"] == "cuda"
    stages = {row["stage"]: row for row in report.get("stages", [])}
    video = report.get("video") or {}
    budgets = report.get("budgets", {}).get("rows", [])
    measured: dict[str, float | None] = {
        "keyframes": _get(stages.get("keyframes"), "studio", "seconds"),
        "svd": _get(stages.get("svd"), "studio", "seconds"),
        "video": _get(video, "studio", "seconds"),
        "video_ratio": video.get("ratio"),
        "budget_8": next((1.0 if r.get("ok") else 0.0 for r in budgets
                          if r.get("stage") == "video" and r.get("budget_gb") == 8), None),
    }
    out = []
    for key, text, limit in TARGETS:
        value = measured[key] if comparable else None  # a tiny or CPU figure next to a GPU target misleads
        met = None if value is None else (value >= limit if key == "budget_8" else value <= limit)
        out.append({"target": key, "description": text, "limit": limit, "measured": value, "met": met})
    return out


def _get(row: dict | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(row, dict):
            return None
        row = row.get(key)
    return row


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def stage_table(report: dict[str, Any]) -> list[list[str]]:
    rows = [["stage", "model", "shape", "steps", "studio s", "baseline s", "ratio", "s/step", "peak GB",
             "TFLOP/step", "MFU", "plan"]]
    for r in report.get("stages", []):
        st, bl = r.get("studio") or {}, r.get("baseline") or {}
        shape = r.get("shape", {})
        size = f"{shape.get('width')}x{shape.get('height')}x{shape.get('frames')}"
        rows.append([r["stage"], r.get("model", ""), size,
                     _fmt(r.get("steps")), _fmt(st.get("seconds")), _fmt(bl.get("seconds")), _fmt(r.get("ratio")),
                     _fmt(st.get("seconds_per_step")), _fmt(st.get("peak_vram_gb")),
                     _fmt((r.get("flops_per_step") or 0) / 1e12 or None), _fmt(st.get("mfu")),
                     str(st.get("plan") or r.get("note") or "")])
    return rows


def _table_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def _table_md(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def _sections(report: dict[str, Any]) -> list[tuple[str, list[list[str]]]]:
    sections = [("Stages (studio vs plain diffusers baseline, same shapes and steps)", stage_table(report))]
    video = report.get("video")
    if video:
        parts = video.get("baseline", {}).get("parts", {})
        sections.append(("Whole video", [
            ["video", "studio s", "baseline s", "ratio", "baseline keyframes/motion/finish s", "same work"],
            [video.get("label", ""), _fmt(_get(video, "studio", "seconds")), _fmt(_get(video, "baseline", "seconds")),
             _fmt(video.get("ratio")), " / ".join(_fmt(parts.get(k)) for k in ("keyframes", "motion", "finish")),
             _fmt(video.get("same_work"))]]))
    budgets = report.get("budgets", {})
    rows = [["budget GB", "stage", "plan", "ok", "seconds", "peak GB", "note"]]
    for r in budgets.get("rows", []):
        rows.append([_fmt(r.get("budget_gb")), r.get("stage", ""), r.get("plan") or "–", _fmt(r.get("ok")),
                     _fmt(r.get("seconds")), _fmt(r.get("peak_vram_gb")), r.get("error") or r.get("note") or ""])
    if budgets.get("skipped"):
        rows.append(["–", "all", "–", "–", "–", "–", budgets["skipped"]])
    sections.append(("Memory budgets (torch.cuda.set_per_process_memory_fraction)", rows))
    rows = [["fast path", "stage", "status", "ratio", "seconds", "reference s", "compile s", "PSNR dB", "SSIM", "win"]]
    for r in report.get("fast_paths", []):
        status = r.get("status", "")[:80]  # failures carry the error text; the JSON has it whole
        if "seconds" not in r and rows[-1][0] == r["name"] and rows[-1][2] == status:
            rows[-1][1] += f", {r.get('stage', '')}"  # one line per skipped fast path, not one per stage
            continue
        rows.append([r["name"], r.get("stage", ""), status, _fmt(r.get("ratio")), _fmt(r.get("seconds")),
                     _fmt(r.get("reference_seconds")), _fmt(r.get("compile_seconds")), _fmt(r.get("psnr")),
                     _fmt(r.get("ssim")), _fmt(r.get("win"))])
    sections.append(("Fast paths (ratio = with / without; < 1 is faster)", rows))
    rows = [["target", "limit", "measured", "met"]]
    rows += [[t["description"], _fmt(t["limit"]), _fmt(t["measured"]), _fmt(t["met"])]
             for t in report.get("targets", [])]
    sections.append(("Targets (met is only judged at full size on a GPU)", rows))
    return sections


def header_lines(report: dict[str, Any]) -> list[str]:
    dev, sw = report["device"], report["software"]
    peak = f"{dev['peak_tflops']} TFLOP/s ({dev['peak_source']})"
    return [f"date: {report['date']}", f"command: {report['command']}",
            f"size: {report['size']}, weights: {report['weights']}, device: {dev['name']} ({dev['kind']}), "
            f"dtype: {dev['dtype']}, peak: {peak}",
            "software: " + ", ".join(f"{k} {v}" for k, v in sw.items()), f"note: {report['note']}"] + (
        ["partial: the run was cut short (a timeout); these are the rows it finished"] if report.get("partial") else [])


def render_text(report: dict[str, Any]) -> str:
    out = header_lines(report)
    for title, rows in _sections(report):
        out += ["", title, _table_text(rows)]
    return "\n".join(out)


def render_markdown(report: dict[str, Any]) -> str:
    out = ["- " + line for line in header_lines(report)]
    for title, rows in _sections(report):
        out += ["", f"**{title}**", "", _table_md(rows)]
    return "\n".join(out)


# ---- fast paths: how each is switched on in a pipeline --------------------------------

_MODELS = ("keyframes", "svd", "cogvideox")
FAST_PATH_STAGES: dict[str, tuple[str, ...]] = {
    "bf16": _MODELS, "sdpa_flash": _MODELS, "sdpa_cudnn": _MODELS, "compile": _MODELS,  # bf16: vs a float32 copy
    "channels_last": ("keyframes", "svd"),  # convolution-heavy UNets only
    "vae_tiling": ("keyframes", "cogvideox"),  # SVD's temporal decoder has no tiling
    # diffusers' caching hooks need a CacheMixin transformer: not the UNets.
    "fbcache": ("cogvideox",), "taylorseer": ("cogvideox",), "magcache": ("cogvideox",),
    "resident": _MODELS, "nvenc": ("finish",),
}
CACHES = ("fbcache", "taylorseer", "magcache")
# Blocks compiled one by one ("regional compilation"): one compile serves every repeat of a block.
REPEATED_BLOCKS: dict[str, tuple[str, ...]] = {
    "UNet2DConditionModel": ("BasicTransformerBlock",),
    "UNetSpatioTemporalConditionModel": ("BasicTransformerBlock", "TemporalBasicTransformerBlock",
                                         "SpatioTemporalResBlock"),
    "CogVideoXTransformer3DModel": ("CogVideoXBlock",),
}


def compile_regions(model: Any) -> int:
    """torch.compile each repeated block in place; returns how many blocks were wrapped."""
    import torch

    for name in ("recompile_limit", "cache_size_limit"):  # blocks at several resolutions recompile a few times
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(64, getattr(torch._dynamo.config, name)))
    names = REPEATED_BLOCKS.get(type(model).__name__) or tuple(getattr(model, "_repeated_blocks", ()))
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    for block in blocks:
        block.compile(fullgraph=True)
    return len(blocks)


def apply_fast_path(name: str, pipe: Any, steps: int, mag_ratios: list[float] | None = None) -> Any:
    """Switch fast path ``name`` on in ``pipe``; returns a factory of the context each call runs in."""
    import torch

    denoiser = denoiser_of(pipe)
    if name in ("sdpa_flash", "sdpa_cudnn"):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = SDPBackend.FLASH_ATTENTION if name == "sdpa_flash" else SDPBackend.CUDNN_ATTENTION
        return lambda: sdpa_kernel([backend])
    if name == "compile":
        compile_regions(denoiser)
    elif name == "channels_last":  # 2-D convolutions only: SVD's temporal Conv3d layers have no such layout
        for conv in [m for part in (denoiser, pipe.vae) for m in part.modules() if isinstance(m, torch.nn.Conv2d)]:
            conv.to(memory_format=torch.channels_last)
    elif name in CACHES:
        from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

        config = {"fbcache": lambda: FirstBlockCacheConfig(threshold=0.05),
                  "taylorseer": lambda: TaylorSeerCacheConfig(taylor_factors_dtype=pipe.dtype),
                  "magcache": lambda: (MagCacheConfig(mag_ratios=mag_ratios, num_inference_steps=steps)
                                       if mag_ratios else MagCacheConfig(calibrate=True, num_inference_steps=steps)),
                  }[name]()
        denoiser.enable_cache(config)
    elif name not in ("vae_tiling", "resident", "bf16", "nvenc"):  # those are handled by the caller
        raise ValueError(f"unknown fast path {name!r}; known: {', '.join(FAST_PATH_STAGES)}")
    return contextlib.nullcontext


# ---- fast paths: each measured on a fresh pipeline through the same stage code -------------------------


def read_frames(folder: Path) -> np.ndarray:
    """The PNGs a stage wrote (keyframes/ or segments/), as one array (N, H, W, 3)."""
    paths = sorted(folder.glob("keyframes/*.png")) + sorted(folder.glob("segments/*/*.png"))
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]) if paths else np.zeros((0,))


def fast_path_rows(bench: "Bench") -> list[dict[str, Any]]:
    from backend.memory import free_memory
    from backend.memory.oom import error_summary

    bench.factory.release()  # each fast path starts from a fresh pipeline; give the cached ones back
    rows = []
    for name in bench.args.fast_paths:
        shapes = [s for s in bench.shapes() if s.stage in FAST_PATH_STAGES[name]]
        if name == "nvenc" and "finish" in bench.args.stages:
            shapes.append(StageShape("finish", "ffmpeg", 0, 0, 0, 0))
        for shape in shapes:
            row: dict[str, Any] = {"name": name, "stage": shape.stage}
            if bench.device != "cuda" and not bench.args.cpu_fast_paths:
                row["status"] = "skipped: needs CUDA"
            elif name == "bf16" and bench.size == "tiny":
                row["status"] = "n/a: the tiny set runs in float32"
            else:
                try:
                    row.update(_nvenc_row(bench) if name == "nvenc" else _fast_path_row(bench, name, shape))
                except (RuntimeError, ValueError, NotImplementedError) as exc:  # OOM, no kernel, compile error
                    row.update(status=f"failed: {error_summary(exc)}", win=False)  # a result, not a crash
                free_memory()
                if bench.device != "cuda":  # --fast-paths-on-cpu: the code ran; its figures judge nothing
                    row.update(status=row["status"] + " on the CPU (plumbing check)", win=None)
            rows.append(row)
    return rows


def _fast_path_row(bench: "Bench", name: str, shape: Any) -> dict[str, Any]:
    """Reference run, fast path on, a warm-up (compiles, calibrates), then the timed run."""
    import torch

    from backend.memory import apply_plan
    from bench.flops import DenoiserProbe, ratio, synchronize

    steps = min(shape.steps, bench.args.max_steps or shape.steps)
    pipe = bench.factory.fresh(shape.model_key)
    probe = DenoiserProbe(denoiser_of(pipe))
    setting: dict[str, Any] = {"context": contextlib.nullcontext, "placer": apply_plan}

    def run(p: Any, n: int = steps) -> tuple[Any, Path]:
        folder = bench.workdir(shape)
        manager = bench.manager(p, placer=setting["placer"])
        with setting["context"]():
            timed, _ = bench.timed(lambda clock: bench.studio(shape, n, folder, clock, manager), [probe],
                                   steps=shape.steps, steps_run=n)
        return timed, folder

    run(pipe, min(2, steps))  # warm-up: allocator, kernel selection
    reference, ref_folder = run(pipe)
    extra: dict[str, Any] = {}
    variant = pipe
    if name == "resident":  # what a resident model saves each job: moving its weights back onto the GPU
        pipe.to("cpu")
        synchronize(bench.device)
        started = time.perf_counter()
        pipe.to(bench.device)
        synchronize(bench.device)
        reload = time.perf_counter() - started
        probe.close()
        return {"status": "measured", "seconds": reference.seconds, "reference_seconds": reference.seconds + reload,
                "ratio": ratio(reference.seconds, reference.seconds + reload), "reload_seconds": round(reload, 4),
                "win": reload > 0, "note": "saved per job: RAM->GPU copy only (disk read and from_pretrained excluded)"}
    if name == "bf16":  # the reference is the bf16 plan; the variant is a float32 copy
        pipe.to("cpu")  # room for the float32 copy (CogVideoX: 42 GB of weights)
        variant = bench.factory.fresh(shape.model_key, dtype=torch.float32)
        probe.close()
        probe = DenoiserProbe(denoiser_of(variant))
    elif name == "vae_tiling":  # the studio's plan with tiling switched on
        setting["placer"] = lambda p, plan: apply_plan(p, replace(plan, vae_tiling=True))
    elif name == "magcache":  # ratios are checkpoint-specific: calibrate on this model first
        apply_fast_path(name, pipe, steps)
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):  # diffusers prints the calibrated ratios
            run(pipe)
        denoiser_of(pipe).disable_cache()
        lines = [line for line in buffer.getvalue().splitlines() if line.startswith("[")]
        extra["mag_ratios"] = [round(x, 4) for x in ast.literal_eval(lines[-1])] if lines else None
        setting["context"] = apply_fast_path(name, pipe, steps, extra["mag_ratios"])
    else:
        setting["context"] = apply_fast_path(name, pipe, steps)
    # Warm-up with the fast path on; compilation gets a full run, so that its cost can be told apart.
    first, _ = run(variant) if name == "compile" else run(variant, min(2, steps))
    timed, folder = run(variant)
    probe.close()
    with_s, without_s = (reference.seconds, timed.seconds) if name == "bf16" else (timed.seconds, reference.seconds)
    a, b = read_frames(ref_folder), read_frames(folder)
    quality = {"psnr": psnr(a, b), "ssim": ssim(a, b)} if a.shape == b.shape and a.size else {}
    good = name not in CACHES or quality.get("psnr", 0.0) >= MIN_PSNR_DB
    row = {"status": "measured", "seconds": with_s, "reference_seconds": without_s, **quality, **extra,
           "ratio": ratio(with_s, without_s), "denoiser_calls": timed.denoiser_calls,
           "win": bool(with_s <= WIN_RATIO * without_s and good)}
    if name == "compile":
        row["compile_seconds"] = round(max(0.0, first.seconds_measured - timed.seconds_measured), 3)
    if name in CACHES and bench.args.weights == "random":
        row["note"] = "random weights: cache hits and quality differ from the real model's (use --weights local)"
    return row


def _nvenc_row(bench: "Bench") -> dict[str, Any]:
    from backend.spec import FinishOptions
    from backend.stages import export
    from bench.flops import ratio

    if not export.ffmpeg_has_encoder("h264_nvenc"):
        return {"status": "skipped: this ffmpeg has no h264_nvenc"}
    clip, target = bench.finish_frames()
    x264, _ = bench.finish_once(clip, target, FinishOptions(encoder="libx264"))
    nvenc, result = bench.finish_once(clip, target, FinishOptions(encoder="h264_nvenc"))
    if result.fallbacks:  # finish() fell back to libx264: the time is not NVENC's
        return {"status": f"failed: {result.fallbacks[0][:200]}", "win": False}
    return {"status": f"measured ({result.codec})", "seconds": round(nvenc, 4), "reference_seconds": round(x264, 4),
            "ratio": ratio(nvenc, x264), "win": nvenc <= WIN_RATIO * x264}


if __name__ == "__main__":  # python -m bench.report report.json: the markdown of a report (also a partial one)
    import json
    import sys

    print(render_markdown(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))

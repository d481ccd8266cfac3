"""The whole-video benchmark: a 10 s 1080p30 job through ``JobRunner``, then the same pipeline calls made plainly.

Split from ``bench.pipeline`` (``Bench.video_row`` delegates here); the memory budgets run it studio-only.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from backend.jobs.runner import JobHooks, JobRunner
from backend.jobs.store import JobStore
from backend.memory import MemoryManager, MemoryPlan
from backend.models.registry import keyframe_model_for
from backend.paths import runtime_paths
from backend.record import KeyframesRecord, ModelStageRecord, StageRecords
from backend.spec import JobSpec
from backend.stages import keyframes, motion
from bench.configs import PROMPT, SEED, VIDEO, StageShape, condition_image, denoiser_of, plain_call, plain_ffmpeg
from bench.flops import DenoiserProbe, ratio, synchronize

if TYPE_CHECKING:  # pragma: no cover
    from bench.pipeline import Bench


def video_row(bench: "Bench", hardware: Any = None, prebuilt: dict[str, Any] | None = None) -> dict[str, Any]:
    """A 10 s 1080p30 job through JobRunner, then the very same pipeline calls made plainly.

    Every pipeline call the studio makes is logged (stage, latent shape, steps) from its progress
    reports, and the baseline replays exactly that list: same work by construction, whatever chunking
    the stages chose. With ``prebuilt`` (memory budgets) only the studio side runs.
    """
    shape = VIDEO[bench.size]
    spec = JobSpec(prompt=PROMPT, seed=SEED, duration=shape.duration, fps=shape.fps, width=shape.width,
                   height=shape.height, engine=shape.engine, keyframes=shape.keyframes,
                   model_set=bench.model_set).validate()
    refs = {"keyframes": keyframe_model_for(bench.model_set, spec.preset),
            "motion": motion.choose_motion(bench.model_set, spec.engine, spec.preset, spec.fps,
                                           hardware or bench.hardware).ref}
    pipes = prebuilt or {ref.key: bench.factory.get(ref.key) for ref in refs.values()}
    probes = {stage: DenoiserProbe(denoiser_of(pipes[ref.key])) for stage, ref in refs.items()}
    calls: list[tuple[str, tuple[int, ...], int]] = []  # (stage, latent shape, steps) per pipeline call

    def progress(stage: str, fraction: float, message: str, step: int | None, total: int | None, p: Any) -> None:
        if step == 1 and stage in probes:  # the first step of a new pipeline call
            calls.append((stage, probes[stage].last_shape, int(total or 0)))

    root = Path(tempfile.mkdtemp(prefix="video-", dir=bench.tmp))
    paths = replace(runtime_paths(root), models=bench.models_root).ensure()
    store = JobStore(paths.database)
    for job_id in ("bench-warmup", "bench-video"):
        store.add(job_id, spec.to_dict())
    loader = lambda ref, models_root, dtype: pipes[ref.key]  # noqa: E731 - the manager's loader seam
    runner = JobRunner(paths, MemoryManager(hardware or bench.hardware, bench.models_root, loader=loader), store)
    if prebuilt is None and bench.args.warmup:  # the video's shapes are new: an untimed job warms both up
        runner.run("bench-warmup", replace(spec, steps=2), JobHooks(threading.Event(), progress, lambda s: None))
        replay(bench, calls, pipes, refs, KeyframesRecord(steps=2, img2img_strength=keyframes.IMG2IMG_STRENGTH), None)
        calls.clear()
    job = lambda clock: runner.run("bench-video", spec, JobHooks(threading.Event(), progress, lambda s: None))  # noqa: E731
    timed, outcome = bench.timed(job, list(probes.values()), steps=1, steps_run=1)
    stages = outcome.record.stages
    counts = len(stages.keyframes.prompts), len(stages.motion.segments)
    row: dict[str, Any] = {
        "label": f"{shape.duration:g} s {shape.width}x{shape.height}@{shape.fps}: {counts[0]} keyframes + "
                 f"{counts[1]} {refs['motion'].key} segments + finish",
        "studio": {"seconds": timed.seconds, "peak_vram_gb": timed.peak_vram_gb, "pipeline_calls": len(calls),
                   "denoiser_calls": timed.denoiser_calls, "stages": outcome.record.stage_seconds()},
        "step_downs": [s.to_dict() for st in (stages.keyframes, stages.motion) for s in st.step_downs],
        "plans": {name: MemoryPlan.from_dict(st.memory_plan).describe() for name, st in stages.items()
                  if isinstance(st, ModelStageRecord) and st.memory_plan}}
    if prebuilt is None:
        for probe in probes.values():
            probe.reset()
        parts = replay(bench, calls, pipes, refs, stages.keyframes, stages)
        row["baseline"] = {"seconds": round(sum(parts.values()), 4), "parts": parts,
                           "denoiser_calls": sum(p.calls for p in probes.values())}
        row["ratio"] = ratio(timed.seconds, row["baseline"]["seconds"])
        row["same_work"] = row["baseline"]["denoiser_calls"] == timed.denoiser_calls
    for probe in probes.values():
        probe.close()
    return row

def replay(bench: "Bench", calls: list[tuple[str, tuple[int, ...], int]], pipes: dict[str, Any],
           refs: dict[str, Any], kf_record: KeyframesRecord, stages: StageRecords | None) -> dict[str, float]:
    """The studio's pipeline calls as plain diffusers calls (and, given ``stages``, one raw ffmpeg)."""
    parts: dict[str, float] = {"keyframes": 0.0, "motion": 0.0}
    image: Image.Image | None = None
    frames: list[Image.Image] = []
    for stage, latent, steps in calls:
        ref = refs[stage]
        height, width = latent[-2] * 8, latent[-1] * 8  # every VAE here scales space by 8
        pipe = bench.plain(pipes[ref.key])
        started = time.perf_counter()
        if stage == "keyframes":
            call = StageShape("keyframes", ref.key, width, height, 1, kf_record.steps)
            strength = kf_record.img2img_strength if image is not None else None
            image = plain_call(pipe, call, image, strength=strength)[0]
        else:
            svd = "StableVideoDiffusion" in ref.pipeline_class  # CogVideoX's VAE compresses time by 4
            count = latent[1] if svd else (latent[1] - 1) * 4 + 1
            call = StageShape("svd" if svd else "cogvideox", ref.key, width, height, count, steps)
            start = frames[-1] if frames else (image or condition_image(width, height))
            frames += list(plain_call(pipe, call, start.resize((width, height))))
        synchronize(bench.device)
        parts[stage] += time.perf_counter() - started
    if stages is not None:  # the studio's finishing graph on the baseline's frames, as assemble sized them
        count, fps = stages.assemble.frames, stages.assemble.fps
        size = frames[0].size
        arrays = [np.asarray(f.convert("RGB").resize(size)) for f in frames[:count]]
        arrays += [arrays[-1]] * (count - len(arrays))
        parts["finish"] = plain_ffmpeg(arrays, fps, stages.finish.filter_graph, bench.tmp, round(stages.finish.fps))
    return {k: round(v, 4) for k, v in parts.items()}


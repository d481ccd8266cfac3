"""Runs one job through its stages: analyse → keyframes → motion → assemble → finish.

The runner owns the order of stages, the job's work folder, the reproducibility record and the
delivered files. It knows nothing about queues or threads (that is the orchestrator's job) and
nothing about Streamlit.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from backend.clip import Clip
from backend.context import StageContext
from backend.memory import MemoryManager
from backend.outputs import compact_comment, output_stem, save_previews, software_versions, write_sidecar
from backend.paths import RuntimePaths
from backend.prompting import analyze_prompt
from backend.spec import JobSpec
from backend.stages import assemble, keyframes, motion, postprocess
from backend.store import JobStore

log = logging.getLogger(__name__)

STAGES = ("analyze", "keyframes", "motion", "assemble", "finish")
TINY_NOTE = "test models — output is noise"

# Called with (stage, stage_fraction, message, step, total, preview).
StageProgress = Callable[[str, float, str, "int | None", "int | None", "Path | None"], None]


@dataclass
class JobOutcome:
    output: Path
    sidecar: Path
    record: dict[str, Any]
    stage_seconds: dict[str, float] = field(default_factory=dict)


class JobRunner:
    def __init__(self, paths: RuntimePaths, memory: MemoryManager, store: JobStore) -> None:
        self.paths = paths
        self.memory = memory
        self.store = store

    def run(self, job_id: str, spec: JobSpec, cancel_event: threading.Event, progress: StageProgress,
            begin_stage: Callable[[str], None]) -> JobOutcome:
        workdir = self.paths.job_workdir(job_id)
        workdir.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {
            "id": job_id, "spec": spec.to_dict(), "created": time.time(), "stages": {}, "models": {},
            "software": software_versions(), "hardware": self.memory.hardware.to_dict(),
        }
        if spec.model_set == "tiny":
            record["note"] = TINY_NOTE

        def context(stage: str) -> StageContext:
            begin_stage(stage)
            return StageContext(
                job_id=job_id, stage=stage, spec=spec, workdir=workdir, paths=self.paths, cancel_event=cancel_event,
                sink=lambda f, m, s, t, p: progress(stage, f, m, s, t, p), memory=self.memory,
            )

        def finish_stage(ctx: StageContext, started: float) -> None:
            seconds = round(time.monotonic() - started, 3)
            ctx.record["seconds"] = seconds
            record["stages"][ctx.stage] = ctx.record
            self.store.stage_done(job_id, ctx.stage, seconds, ctx.record)
            self.store.update_record(job_id, record)

        # 1. Prompt analysis.
        started = time.monotonic()
        ctx = context("analyze")
        analysis = analyze_prompt(spec.prompt, spec.negative_prompt)
        record["analysis"] = analysis.to_dict()
        ctx.record.update(enhanced_prompt=analysis.enhanced_prompt)
        finish_stage(ctx, started)

        # 2. Inputs the user gave (i2v image, or the video to extend).
        engine_ref = motion.engine_ref(spec.model_set, spec.engine)
        motion_size = (engine_ref.width, engine_ref.height)
        start_image, prefix_source = self._user_inputs(spec)

        # 3. Keyframes.
        frames_needed = max(2, round(spec.duration * engine_ref.fps) + (1 if spec.mode == "extend" else 0))
        count = min(spec.keyframe_count(), max(1, frames_needed // 2))  # never more gaps than frames
        started = time.monotonic()
        ctx = context("keyframes")
        if count != spec.keyframe_count():
            ctx.record["keyframes_capped"] = f"{spec.keyframe_count()} → {count}: too few frames for more"
        kf = keyframes.run(ctx, analysis, count=count, motion_aspect=motion_size[0] / motion_size[1],
                           start_image=start_image)
        record["models"]["keyframes"] = kf.model
        finish_stage(ctx, started)

        # 4. Motion.
        started = time.monotonic()
        ctx = context("motion")
        moved = motion.run(ctx, analysis, kf.paths, frames_needed=frames_needed)
        record["models"]["motion"] = moved.model
        finish_stage(ctx, started)
        if self.memory.hardware.has_cuda:
            self.memory.release()  # finishing needs no model; give the GPU back between jobs' heavy stages

        # 5. Assemble (after the source clip when extending).
        started = time.monotonic()
        ctx = context("assemble")
        prefix = (assemble.source_clip(ctx, prefix_source, fps=moved.fps, size=moved.size)
                  if prefix_source is not None else None)
        continuation = frames_needed - (1 if prefix is not None else 0)
        clip = assemble.run(ctx, moved.segments, fps=moved.fps, frames_needed=continuation, prefix=prefix)
        finish_stage(ctx, started)

        # 6. Finish: one ffmpeg graph to the delivered file, verified, then moved into outputs/.
        started = time.monotonic()
        ctx = context("finish")
        stem = output_stem(spec.prompt, job_id)
        total_seconds = spec.duration + (prefix.duration if prefix is not None else 0.0)
        target = postprocess.FinishTarget(width=spec.width, height=spec.height, fps=spec.fps,
                                          total_frames=max(1, round(total_seconds * spec.fps)))
        title = f"[{TINY_NOTE}] {spec.prompt}" if spec.model_set == "tiny" else spec.prompt
        result = postprocess.finish(
            clip, target=target, options=spec.post, workdir=workdir / "finish",
            output_path=self.paths.outputs / f"{stem}.mp4",
            metadata={"title": title[:250], "comment": compact_comment(record)},
            report=lambda f, m, s=None, t=None: ctx.report(f, m, step=s, total=t),
            check_cancelled=ctx.check_cancelled,
        )
        ctx.record.update(result.to_dict())
        finish_stage(ctx, started)

        # 7. Record, previews, clean-up.
        previews = save_previews(kf.paths, self.paths.state / "previews" / job_id)
        record.update(output=str(result.path), format=result.format, previews=[str(p) for p in previews],
                      finished=time.time())
        sidecar = write_sidecar(self.paths.outputs / f"{stem}.json", record)
        shutil.rmtree(workdir, ignore_errors=True)
        return JobOutcome(result.path, sidecar, record,
                          {name: data.get("seconds", 0.0) for name, data in record["stages"].items()})

    def _user_inputs(self, spec: JobSpec) -> tuple[Image.Image | None, Path | None]:
        if spec.mode == "i2v":
            from backend.uploads import load_image

            return load_image(Path(spec.image)), None
        if spec.mode == "extend":
            from backend.video_io import last_frame, probe_video

            video = Path(spec.video)
            probe_video(video)  # a clear error before any model is loaded
            return Image.fromarray(last_frame(video)), video
        return None, None


def stage_units(record: dict[str, Any]) -> dict[str, float]:
    """Units of work per stage (for seconds-per-unit calibration of ETAs)."""
    stages = record.get("stages", {})
    kf = stages.get("keyframes", {})
    mo = stages.get("motion", {})
    fin = stages.get("finish", {})
    return {
        "keyframes": float(len(kf.get("prompts", [])) * kf.get("steps", 0)),
        "motion": float(sum(s["frames"] for s in mo.get("segments", [])) * mo.get("steps", 0)),
        "finish": float(fin.get("frames", 0)),
    }

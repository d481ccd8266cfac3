"""Runs one job through its stages: analyse → keyframes → motion → assemble → finish.

The runner owns the order of stages, the job's work folder, the reproducibility record and the
delivered files. It knows nothing about queues or threads (that is the orchestrator's job) and
nothing about Streamlit.

Crash safety and resume: each stage writes its artifacts into the work folder (keyframes and
segments by write-then-rename, so a file that exists is complete) and then records a checkpoint
(the stage's record plus the size of every artifact) together with the job record in one store
transaction. A resumed job re-enters every stage; stages skip artifacts already on disk, and a
stage whose checkpoint is intact gets its original record back (memory plan, step-downs, seconds).
Broken leftovers (half-written temp files, a segment with missing frames, an artifact whose size no
longer matches its checkpoint) are deleted first and regenerated, which is deterministic per seed.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image

from backend.clip import Clip
from backend.context import JobCancelled, StageContext
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
KEYFRAME_NAME = re.compile(r"keyframe_\d{3}\.png")
FFMPEG_CHECK_S = 30

# Called with (stage, stage_fraction, message, step, total, preview).
StageProgress = Callable[[str, float, str, "int | None", "int | None", "Path | None"], None]


class ToolMissing(RuntimeError):
    """A program the job needs (ffmpeg) is missing; found out before any model work starts."""


@dataclass
class JobOutcome:
    output: Path
    sidecar: Path
    record: dict[str, Any]
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Run:
    """One run (first or resumed) of one job: what the stages share."""

    job_id: str
    spec: JobSpec
    workdir: Path
    record: dict[str, Any]
    kept: dict[str, dict[str, Any]]  # stage -> checkpoint of the previous run, artifacts intact
    context: Callable[[str], StageContext]


class JobRunner:
    def __init__(self, paths: RuntimePaths, memory: MemoryManager, store: JobStore) -> None:
        self.paths = paths
        self.memory = memory
        self.store = store

    def run(self, job_id: str, spec: JobSpec, cancel_event: threading.Event, progress: StageProgress,
            begin_stage: Callable[[str], None]) -> JobOutcome:
        workdir = self.paths.job_workdir(job_id)
        delivered = self._already_delivered(job_id, self.intact_checkpoints(job_id))
        if delivered is not None:
            return delivered  # the previous run published its video and stopped before the store said so
        check_ffmpeg()  # fail in a second, not after the keyframes and motion
        workdir.mkdir(parents=True, exist_ok=True)
        discard_changed_artifacts(workdir, self.store.stages(job_id))
        discard_broken_artifacts(workdir)
        kept = self.intact_checkpoints(job_id)  # after the clean-up: only what will really be reused

        def context(stage: str) -> StageContext:
            begin_stage(stage)
            return StageContext(
                job_id=job_id, stage=stage, spec=spec, workdir=workdir, paths=self.paths, cancel_event=cancel_event,
                sink=lambda f, m, s, t, p: progress(stage, f, m, s, t, p), memory=self.memory,
            )

        job = _Run(job_id, spec, workdir, self._new_record(job_id, spec, kept), kept, context)
        if cancel_event.is_set():
            raise JobCancelled("cancelled before it started")
        try:
            return self._stages(job)
        except BaseException:
            discard_partials(workdir)  # a failed write must not keep disk space (or confuse a resume)
            raise

    # --- the stages, in order ---------------------------------------------------------------
    def _stages(self, job: _Run) -> JobOutcome:
        spec, workdir, record = job.spec, job.workdir, job.record
        # 1. Prompt analysis.
        started, ctx = time.monotonic(), job.context("analyze")
        analysis = analyze_prompt(spec.prompt, spec.negative_prompt, spec.enhanced_prompt)
        record["analysis"] = analysis.to_dict()
        ctx.record.update(enhanced_prompt=analysis.enhanced_prompt)
        self._finish_stage(job, ctx, started)

        # 2. Inputs the user gave (i2v image, or the video to extend).
        # The motion model is chosen first: on a small GPU the planner may cap its size or substitute
        # the low-memory engine, which makes video from the prompt alone (no keyframes).
        choice = motion.choose_motion(spec.model_set, spec.engine, self.memory.hardware)
        motion_size = choice.size
        start_image, prefix_source = self._user_inputs(spec)

        # 3. Keyframes (those already on disk are kept).
        frames_needed = max(2, round(spec.duration * choice.ref.fps) + (1 if spec.mode == "extend" else 0))
        count = min(spec.keyframe_count(), max(1, frames_needed // 2))  # never more gaps than frames
        started, ctx = time.monotonic(), job.context("keyframes")
        reused = sum(1 for p in (workdir / "keyframes").glob("keyframe_*.png") if KEYFRAME_NAME.fullmatch(p.name))
        if count != spec.keyframe_count():
            ctx.record["keyframes_capped"] = f"{spec.keyframe_count()} → {count}: too few frames for more"
        if choice.uses_keyframes:
            kf = keyframes.run(ctx, analysis, count=count, motion_aspect=motion_size[0] / motion_size[1],
                               start_image=start_image)
        else:
            kf = keyframes.KeyframeResult.skipped(choice.substitution or "the motion engine needs no keyframes")
            ctx.record["skipped"] = kf.note
        record["models"]["keyframes"] = kf.model
        self._finish_stage(job, ctx, started, artifacts=kf.paths, reused=reused)

        # 4. Motion (finished segments are kept).
        started, ctx = time.monotonic(), job.context("motion")
        reused = len(list((workdir / "segments").glob(f"*/{motion.DONE_MARKER}")))
        moved = motion.run(ctx, analysis, kf.paths, frames_needed=frames_needed, choice=choice)
        record["models"]["motion"] = moved.model
        segment_files = [p for clip in moved.segments for p in _segment_files(clip)]
        self._finish_stage(job, ctx, started, artifacts=segment_files, reused=reused)

        # 5. Assemble (after the source clip when extending).
        started, ctx = time.monotonic(), job.context("assemble")
        prefix = (assemble.source_clip(ctx, prefix_source, fps=moved.fps, size=moved.size)
                  if prefix_source is not None else None)
        continuation = frames_needed - (1 if prefix is not None else 0)
        clip = assemble.run(ctx, moved.segments, fps=moved.fps, frames_needed=continuation, prefix=prefix)
        self._finish_stage(job, ctx, started, artifacts=list(prefix.frame_paths) if prefix is not None else [])

        # 6. Finish: one ffmpeg graph to the delivered file, verified, then moved into outputs/.
        started, ctx = time.monotonic(), job.context("finish")
        stem = output_stem(spec.prompt, job.job_id)
        result = self._finish(ctx, clip, spec, record, stem, prefix)
        ctx.record.update(result.to_dict(), stem=stem)
        self._finish_stage(job, ctx, started)

        # 7. Record, previews, sidecar (the work folder goes once the store says done).
        return self._deliver(job.job_id, record, result.path, result.format, stem, kf.paths)

    def _finish(self, ctx: StageContext, clip: Clip, spec: JobSpec, record: dict[str, Any], stem: str,
                prefix: Clip | None) -> postprocess.FinishResult:
        total_seconds = spec.duration + (prefix.duration if prefix is not None else 0.0)
        target = postprocess.FinishTarget(width=spec.width, height=spec.height, fps=spec.fps,
                                          total_frames=max(1, round(total_seconds * spec.fps)))
        title = f"[{TINY_NOTE}] {spec.prompt}" if spec.model_set == "tiny" else spec.prompt
        return postprocess.finish(
            clip, target=target, options=spec.post, workdir=ctx.workdir / "finish",
            output_path=self.paths.outputs / f"{stem}.mp4",
            metadata={"title": title[:250], "comment": compact_comment(record)},
            report=lambda f, m, s=None, t=None: ctx.report(f, m, step=s, total=t),
            check_cancelled=ctx.check_cancelled,
        )

    def _deliver(self, job_id: str, record: dict[str, Any], output: Path, fmt: str, stem: str,
                 keyframe_paths: list[Path]) -> JobOutcome:
        present = [p for p in keyframe_paths if p.is_file()]
        if present:
            previews = [str(p) for p in save_previews(present, self.paths.state / "previews" / job_id)]
        else:  # delivered by an earlier run whose work folder is gone: keep the previews it made
            previews = list(record.get("previews", []))
        record.update(output=str(output), format=fmt, previews=previews, finished=time.time())
        sidecar = write_sidecar(self.paths.outputs / f"{stem}.json", record)
        return JobOutcome(output, sidecar, record,
                          {name: data.get("seconds", 0.0) for name, data in record["stages"].items()})

    def _finish_stage(self, job: _Run, ctx: StageContext, started: float, *, artifacts: Sequence[Path] = (),
                      reused: int = 0) -> None:
        """Checkpoint the stage (its record and artifact sizes, with the job record, atomically)."""
        # Finishing always runs again when reached (its file is the one delivered now).
        previous = job.kept.get(ctx.stage) if ctx.stage != "finish" else None
        if previous is not None:
            # Same artifacts as the earlier run: its record (memory plan, step-downs, seconds) still holds.
            stage_record = {k: v for k, v in previous.items() if k != "artifacts"}
            stage_record.update(kept=True)
        else:
            stage_record = dict(ctx.record, seconds=round(time.monotonic() - started, 3))
            if reused:
                stage_record["resumed"] = f"{reused} artifact(s) kept from an earlier run"
        job.record["stages"][ctx.stage] = stage_record
        checkpoint = dict(stage_record, artifacts=_artifact_sizes(artifacts, job.workdir))
        self.store.checkpoint(job.job_id, ctx.stage, float(stage_record.get("seconds", 0.0)), checkpoint,
                              job.record)
        ctx.check_cancelled()  # a cancel between stages takes effect here, with this stage saved

    # --- resume -------------------------------------------------------------------------------
    def intact_checkpoints(self, job_id: str) -> dict[str, dict[str, Any]]:
        """Checkpoints of stages the previous run finished whose artifacts are still on disk, unchanged."""
        workdir = self.paths.job_workdir(job_id)
        intact: dict[str, dict[str, Any]] = {}
        for stage, data in self.store.stages(job_id).items():
            checkpoint = data.get("checkpoint") or {}
            if data.get("state") == "done" and _artifacts_intact(checkpoint.get("artifacts", {}), workdir):
                intact[stage] = checkpoint
        # A stage's record is only valid if every stage before it is kept too (its inputs are the same).
        kept: dict[str, dict[str, Any]] = {}
        for stage in STAGES:
            if stage not in intact:
                break
            kept[stage] = intact[stage]
        return kept

    def _new_record(self, job_id: str, spec: JobSpec, kept: dict[str, dict[str, Any]]) -> dict[str, Any]:
        previous = self.store.get(job_id)
        attempt = int(previous.record.get("attempt", 1)) + 1 if previous is not None and previous.record else 1
        record: dict[str, Any] = {
            "id": job_id, "spec": spec.to_dict(), "created": time.time(), "stages": {}, "models": {},
            "software": software_versions(), "hardware": self.memory.hardware.to_dict(), "attempt": attempt,
        }
        if attempt > 1:
            record["resume"] = {"kept_stages": list(kept), "at": time.time()}
        if spec.model_set == "tiny":
            record["note"] = TINY_NOTE
        return record

    def _already_delivered(self, job_id: str, kept: dict[str, dict[str, Any]]) -> JobOutcome | None:
        """The outcome of a run that published its file but was stopped before the job was marked done."""
        finish = kept.get("finish")
        row = self.store.get(job_id)
        if finish is None or row is None or not finish.get("stem") or not finish.get("path"):
            return None
        output = Path(finish["path"])
        outputs = self.paths.outputs.resolve()
        if not output.exists() or not output.resolve().is_relative_to(outputs):
            return None
        record = dict(row.record)
        log.info("job %s: its video %s was already delivered; completing the record", job_id, output.name)
        kf = [p for p in sorted((self.paths.job_workdir(job_id) / "keyframes").glob("keyframe_*.png"))
              if KEYFRAME_NAME.fullmatch(p.name)]
        return self._deliver(job_id, record, output, str(finish.get("format", "")), finish["stem"], kf)

    def discard_workdir(self, job_id: str) -> None:
        """Remove a finished job's work folder (called once the store records the job as done)."""
        shutil.rmtree(self.paths.job_workdir(job_id), ignore_errors=True)

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


# --- work-folder hygiene -------------------------------------------------------------------------
def check_ffmpeg() -> str:
    """The ffmpeg executable, if it is there and runs; else ToolMissing with what to do about it."""
    from backend.video_io import ffmpeg_exe

    fix = "Reinstall the studio (./launch.sh) or correct IMAGEIO_FFMPEG_EXE."
    try:
        exe = ffmpeg_exe()
    except RuntimeError as exc:
        raise ToolMissing(f"ffmpeg is not installed ({exc}). {fix}") from exc
    if shutil.which(exe) is None:
        raise ToolMissing(f"ffmpeg was not found or cannot be run at {exe}. {fix}")
    try:
        done = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, timeout=FFMPEG_CHECK_S)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolMissing(f"ffmpeg at {exe} cannot be run ({exc}). {fix}") from exc
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()[:1]
        raise ToolMissing(f"ffmpeg at {exe} does not work (exit status {done.returncode}"
                          f"{': ' + said[0][:200] if said else ''}). {fix}")
    return exe


def discard_partials(workdir: Path) -> list[Path]:
    """Delete half-written files a stopped stage leaves (temp keyframes, unfinished segments)."""
    removed = []
    for pattern in ("keyframes/*.tmp.png", "segments/*.partial"):
        for path in workdir.glob(pattern):
            _remove(path)
            removed.append(path)
    return removed


def discard_broken_artifacts(workdir: Path) -> list[Path]:
    """Before a resume: drop leftovers that are not complete (rename without fsync, a power cut, a bad disk).

    Keyframes must decode; a segment folder must hold as many frames as its marker says.
    """
    removed = discard_partials(workdir)
    for path in sorted((workdir / "keyframes").glob("keyframe_*.png")):
        if KEYFRAME_NAME.fullmatch(path.name) and not _png_readable(path):
            _remove(path)
            removed.append(path)
    for marker in sorted((workdir / "segments").glob(f"*/{motion.DONE_MARKER}")):
        if not _segment_complete(marker):
            _remove(marker.parent)
            removed.append(marker.parent)
    if removed:
        log.warning("removed %d incomplete artifact(s) from %s; they will be made again", len(removed), workdir)
    return removed


def discard_changed_artifacts(workdir: Path, stages: dict[str, dict[str, Any]]) -> list[Path]:
    """Delete checkpointed artifacts whose size changed since (a torn write); a segment goes whole."""
    removed: list[Path] = []
    for data in stages.values():
        for relative, size in (data.get("checkpoint") or {}).get("artifacts", {}).items():
            path = workdir / relative
            if not path.exists() or _size(path) == size:
                continue
            target = path.parent if (path.parent / motion.DONE_MARKER).exists() else path
            _remove(target)
            removed.append(target)
    if removed:
        log.warning("%d artifact(s) in %s changed since their checkpoint; they will be made again",
                    len(removed), workdir)
    return removed


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _segment_complete(marker: Path) -> bool:
    try:
        expected = int(json.loads(marker.read_text())["frames"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    frames = sorted(marker.parent.glob("*.png"))
    return len(frames) == expected and all(_png_readable(p) for p in frames)


def _png_readable(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (OSError, SyntaxError, ValueError):  # PIL reports broken PNG chunks as SyntaxError
        return False


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _segment_files(clip: Clip) -> list[Path]:
    folder = clip.frame_paths[0].parent
    return [*clip.frame_paths, folder / motion.DONE_MARKER]


def _artifact_sizes(paths: Sequence[Path], workdir: Path) -> dict[str, int]:
    sizes = {}
    for path in paths:
        path = Path(path)
        if path.is_file() and path.resolve().is_relative_to(workdir.resolve()):
            sizes[str(path.resolve().relative_to(workdir.resolve()))] = path.stat().st_size
    return sizes


def _artifacts_intact(artifacts: dict[str, int], workdir: Path) -> bool:
    for relative, size in artifacts.items():
        path = workdir / relative
        try:
            if not path.is_file() or path.stat().st_size != size:
                return False
        except OSError:
            return False
    return True


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

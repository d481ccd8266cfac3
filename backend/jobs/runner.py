"""Runs one job through its stages: analyse → keyframes → motion → assemble → finish.

The runner owns the order of stages, the job's work folder, the job record and the delivered files.
It knows nothing about queues or threads (that is the orchestrator's job) and nothing about Streamlit.
Every stage has the same shape, ``stage.run(ctx, inputs) -> result``, and each result carries the
stage's typed record; the runner checkpoints that record with the stage's artifacts (see
``checkpoints.py``) so that a resumed job keeps every stage whose work is still intact.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from backend.errors import AwaitingReview, JobCancelled
from backend.faults import kill_point
from backend.hashing import file_sha256
from backend.jobs import checkpoints
from backend.jobs.model_sources import model_sources
from backend.jobs.outputs import compact_comment, output_stem, save_previews, software_versions, write_sidecar
from backend.jobs.store import JobStore
from backend.jobs.storyboard import MAX_KEYFRAMES, new_storyboard, storyboard_positions
from backend.media.clip import Clip
from backend.media.video_io import check_ffmpeg, last_frames, probe_video
from backend.memory import MemoryManager
from backend.paths import RuntimePaths
from backend.prompting import PromptAnalysis
from backend.record import (
    FinishRecord,
    JobRecord,
    ModelsUsed,
    ResumeInfo,
    StageRecord,
    StageRecords,
    Storyboard,
)
from backend.spec import JobSpec
from backend.stages import analyze, assemble, finish, keyframes, motion
from backend.stages.context import StageContext

log = logging.getLogger(__name__)

TINY_NOTE = "test models — output is noise"

# Called with (stage, stage_fraction, message, step, total, preview).
StageProgress = Callable[[str, float, str, "int | None", "int | None", "Path | None"], None]


@dataclass(frozen=True)
class JobHooks:
    """How a running job talks back to whoever runs it (the orchestrator: store, snapshot, ETA, log)."""

    cancel: threading.Event
    progress: StageProgress
    begin_stage: Callable[[str], None]
    log: Callable[[str], None] = lambda line: None


@dataclass
class JobOutcome:
    output: Path
    sidecar: Path
    record: JobRecord


@dataclass
class _Run:
    """One run (first or resumed) of one job: what the stages share."""

    job_id: str
    spec: JobSpec
    workdir: Path
    record: JobRecord
    kept: dict[str, StageRecord]  # stage -> its record from the previous run, artifacts intact
    hooks: JobHooks
    previous: JobRecord | None  # the record of this job's previous run (its storyboard and analysis)
    submitted: datetime  # when the job was queued: names its video, so a resumed run replaces, not adds


class JobRunner:
    def __init__(self, paths: RuntimePaths, memory: MemoryManager, store: JobStore) -> None:
        self.paths = paths
        self.memory = memory
        self.store = store

    def run(self, job_id: str, spec: JobSpec, hooks: JobHooks) -> JobOutcome:
        workdir = self.paths.job_workdir(job_id)
        delivered = self._already_delivered(job_id)
        if delivered is not None:
            return delivered  # the previous run published its video and stopped before the store said so
        check_ffmpeg()  # fail in a second, not after the keyframes and motion
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoints.discard_changed_artifacts(workdir, self.store.stages(job_id))
        checkpoints.discard_broken_artifacts(workdir)
        kept = self.kept_stages(job_id)  # after the clean-up: only what will really be reused
        row = self.store.get(job_id)
        submitted = datetime.fromtimestamp(row.created) if row is not None else datetime.now()
        previous = row.record if row is not None else None
        job = _Run(job_id, spec, workdir, self._new_record(job_id, spec, kept), kept, hooks, previous, submitted)
        if hooks.cancel.is_set():
            raise JobCancelled("cancelled before it started")
        try:
            return self._stages(job)
        except BaseException:
            checkpoints.discard_partials(workdir)  # a failed write must not keep disk space (or confuse a resume)
            raise

    # --- the stages, in order ---------------------------------------------------------------
    def _stages(self, job: _Run) -> JobOutcome:
        spec, workdir, record = job.spec, job.workdir, job.record
        # 1. The motion engine first (on a small GPU the planner may cap its size or substitute the light
        #    engine): it decides how many keyframes the storyboard has. Then the inputs the user gave.
        choice = motion.choose_motion(spec.model_set, spec.engine, spec.preset, spec.fps, self.memory.hardware)
        start_image, source = self._user_inputs(spec)
        frames_needed = max(2, round(spec.duration * choice.fps) + (1 if source is not None else 0))

        # 2. The shot plan: analysis and storyboard (a reviewed or resumed job keeps the storyboard it has).
        analysis, board = self._plan(job, choice, frames_needed, start_image is not None)

        # 3. Keyframes (those already on disk are kept); a job under review stops here until Animate.
        started, ctx = time.monotonic(), self._context(job, "keyframes")
        reused = len(checkpoints.keyframe_files(workdir))
        kf = keyframes.run(ctx, keyframes.KeyframeInputs(
            analysis, board, motion_aspect=choice.size[0] / choice.size[1], start_image=start_image,
            start_fit="fill" if source is not None else "pad", requested=spec.keyframe_count()))
        record.models.keyframes = kf.record.model
        for frame, path, seed in zip(board.frames, kf.paths, kf.record.seeds):
            frame.image_sha256 = file_sha256(path)
            if frame.source == "generated":
                frame.seed = seed  # the seed really used (a shared one in the IP-Adapter and independent modes)
        self._finish_stage(job, ctx, started, kf.record, artifacts=kf.paths, reused=reused)
        if not board.approved:
            raise AwaitingReview(record)

        # 4. Motion (finished segments are kept).
        started, ctx = time.monotonic(), self._context(job, "motion")
        reused = checkpoints.finished_segments(workdir)
        tail = tuple(Image.fromarray(f) for f in last_frames(source, motion.CONTINUATION_LEAD)) if source else ()
        moved = motion.run(ctx, motion.MotionInputs(analysis, kf.paths, frames_needed, choice, tail,
                                                    positions=self._positions(ctx, board, frames_needed),
                                                    segment_prompts=list(board.segment_prompts) or None))
        record.models.motion = moved.record.model
        segment_files = [p for clip in moved.segments for p in motion.segment_files(clip)]
        self._finish_stage(job, ctx, started, moved.record, artifacts=segment_files, reused=reused)

        # 5. Assemble: exact frame count; when extending, after the source clip at its own size and rate.
        started, ctx = time.monotonic(), self._context(job, "assemble")
        prefix = assemble.source_clip(ctx, source) if source is not None else None
        assembled = assemble.run(ctx, assemble.AssembleInputs(moved.segments, moved.fps, spec.duration, prefix))
        self._finish_stage(job, ctx, started, assembled.record, artifacts=assembled.artifacts)

        # 6. Finish: one ffmpeg graph to the delivered file, verified, then moved into outputs/.
        started, ctx = time.monotonic(), self._context(job, "finish")
        stem = output_stem(spec.prompt, job.job_id, job.submitted)  # the same name on every run of this job
        finished = finish.run(ctx, self._finish_inputs(ctx, assembled.clip, spec, record, stem, prefix))
        kill_point("after-publish")
        finished.stem = stem
        self._finish_stage(job, ctx, started, finished)

        # 7. Record (with where every model's weights came from), previews, sidecar.
        record.models.sources = model_sources(record, spec.model_set, self.paths.models) or None
        return self._deliver(job.job_id, record, finished, kf.paths)

    def _plan(self, job: _Run, choice: motion.MotionChoice, frames_needed: int,
              start_image: bool) -> tuple[PromptAnalysis, Storyboard]:
        """Analysis and storyboard: planned now, or the ones an earlier run of this job made (and the user
        may have edited while reviewing), so that a re-run never re-plans what the user saw."""
        spec = job.spec
        started, ctx = time.monotonic(), self._context(job, "analyze")
        kept = _earlier_plan(job.previous)
        if kept is not None:
            analysis, board, stage_record = kept
        else:
            count = choice.keyframes_for(min(spec.keyframe_count(), max(1, frames_needed // 2)), frames_needed)
            analysed = analyze.run(ctx, analyze.AnalyzeInputs(
                spec.prompt, spec.negative_prompt, spec.enhanced_prompt, keyframes=count, duration=spec.duration,
                planner=spec.planner, model_set=spec.model_set, models_root=self.paths.models))
            least = choice.keyframes_for(1, frames_needed)  # a first-last engine needs one per call
            limits = (least, max(least, min(MAX_KEYFRAMES, frames_needed // 2)))
            if limits[0] == 1 and count == 1:
                limits = (1, 1)  # an engine that continues one shot uses only the first keyframe
            board = new_storyboard(analysed.plan, spec, start_image=start_image, limits=limits, frames=frames_needed)
            analysis, stage_record = analysed.analysis, analysed.record
        job.record.analysis, job.record.storyboard = analysis.to_dict(), board
        self._finish_stage(job, ctx, started, stage_record)
        return analysis, board

    @staticmethod
    def _positions(ctx: StageContext, board: Storyboard, frames_needed: int) -> list[int] | None:
        positions = storyboard_positions(board, frames_needed)
        if positions != sorted(set(positions)):  # times closer than a frame at this engine's rate
            ctx.log("storyboard times closer than one frame: keyframes spread evenly instead")
            return None
        return positions

    def _context(self, job: _Run, stage: str) -> StageContext:
        job.hooks.begin_stage(stage)
        progress = job.hooks.progress
        return StageContext(
            job_id=job.job_id, stage=stage, spec=job.spec, workdir=job.workdir, cancel_event=job.hooks.cancel,
            sink=lambda f, m, s, t, p: progress(stage, f, m, s, t, p), memory=self.memory, notes=job.hooks.log,
        )

    def _finish_inputs(self, ctx: StageContext, clip: Clip, spec: JobSpec, record: JobRecord, stem: str,
                       prefix: Clip | None) -> finish.FinishInputs:
        title = f"[{TINY_NOTE}] {spec.prompt}" if spec.model_set == "tiny" else spec.prompt
        metadata = {"title": title[:250], "comment": compact_comment(record)}
        output = self.paths.outputs / f"{stem}.mp4"
        if prefix is None:
            target = finish.FinishTarget(spec.width, spec.height, spec.fps, max(1, round(spec.duration * spec.fps)))
            return finish.FinishInputs(clip, target, output, metadata)
        # Extending: the user's footage keeps its size and rate and is not graded, sharpened or stabilised;
        # the continuation was brought to match it in the assemble stage.
        ctx.log(f"extend: the output keeps the source's {prefix.width}x{prefix.height} at {round(prefix.fps)} fps; "
                "grade, sharpen and stabilisation are off so the source frames stay as they were")
        target = finish.FinishTarget(prefix.width, prefix.height, max(1, round(prefix.fps)), len(clip))
        untouched = replace(spec.finish, grade="none", lut=None, sharpen=0.0, stabilize="off")
        return finish.FinishInputs(clip, target, output, metadata, options=untouched)

    def _deliver(self, job_id: str, record: JobRecord, finished: FinishRecord,
                 keyframe_paths: list[Path]) -> JobOutcome:
        present = [p for p in keyframe_paths if p.is_file()]
        if present:
            record.previews = [str(p) for p in save_previews(present, self.paths.state / "previews" / job_id)]
        # else: delivered by an earlier run whose work folder is gone; the previews it made stay
        record.output, record.format, record.finished = finished.path, finished.format, time.time()
        sidecar = write_sidecar(self.paths.outputs / f"{finished.stem}.json", record)
        return JobOutcome(finished.file, sidecar, record)

    def _finish_stage(self, job: _Run, ctx: StageContext, started: float, stage_record: StageRecord, *,
                      artifacts: Sequence[Path] = (), reused: int = 0) -> None:
        """Checkpoint the stage (its record and artifact sizes, with the job record, atomically)."""
        # Finishing always runs again when reached (its file is the one delivered now).
        previous = job.kept.get(ctx.stage) if ctx.stage != "finish" else None
        if previous is not None:
            # Same artifacts as the earlier run: its record (memory plan, step-downs, seconds) still holds.
            stage_record = previous
            stage_record.kept = True
        else:
            stage_record.seconds = round(time.monotonic() - started, 3)
            if reused:
                stage_record.resumed = f"{reused} artifact(s) kept from an earlier run"
        job.record.stages.set(ctx.stage, stage_record)
        self.store.checkpoint(job.job_id, ctx.stage, stage_record,
                              checkpoints.artifact_sizes(artifacts, job.workdir), job.record)
        if ctx.stage != "finish":
            ctx.check_cancelled()  # a cancel between stages takes effect here, with this stage saved
        elif job.hooks.cancel.is_set():  # too late: the video is in outputs/ and gets its record
            ctx.log("the cancel came after the video was finished; it is kept")

    # --- resume -------------------------------------------------------------------------------
    def kept_stages(self, job_id: str) -> dict[str, StageRecord]:
        """Records of the stages a re-run would keep (checkpointed, artifacts intact), in order."""
        return checkpoints.kept_stages(self.store.stages(job_id), self.paths.job_workdir(job_id))

    def _new_record(self, job_id: str, spec: JobSpec, kept: dict[str, StageRecord]) -> JobRecord:
        previous = self.store.get(job_id)
        attempt = previous.record.attempt + 1 if previous is not None and previous.record is not None else 1
        record = JobRecord(id=job_id, spec=spec.to_dict(), created=time.time(), attempt=attempt,
                           stages=StageRecords(), models=ModelsUsed(), software=software_versions(),
                           hardware=self.memory.hardware.to_dict(),
                           note=TINY_NOTE if spec.model_set == "tiny" else None)
        if attempt > 1:
            record.resume = ResumeInfo(kept_stages=list(kept), at=time.time())
        return record

    def _already_delivered(self, job_id: str) -> JobOutcome | None:
        """The outcome of a run that published its file but was stopped before the job was marked done."""
        finished = self.kept_stages(job_id).get("finish")
        row = self.store.get(job_id)
        if not isinstance(finished, FinishRecord) or row is None or row.record is None:
            return None
        if not finished.stem or not finished.path:
            return None
        outputs = self.paths.outputs.resolve()
        if not finished.file.exists() or not finished.file.resolve().is_relative_to(outputs):
            return None
        log.info("job %s: its video %s was already delivered; completing the record", job_id, finished.file.name)
        keyframe_paths = checkpoints.keyframe_files(self.paths.job_workdir(job_id))
        return self._deliver(job_id, row.record, finished, keyframe_paths)

    def discard_scratch(self, job_id: str) -> None:
        """Free what a failed run wrote that a resume does not reuse (partial files, encode attempts)."""
        workdir = self.paths.job_workdir(job_id)
        checkpoints.discard_partials(workdir)
        shutil.rmtree(workdir / "finish", ignore_errors=True)

    def discard_workdir(self, job_id: str) -> None:
        """Remove a finished job's work folder (called once the store records the job as done)."""
        shutil.rmtree(self.paths.job_workdir(job_id), ignore_errors=True)

    def _user_inputs(self, spec: JobSpec) -> tuple[Image.Image | None, Path | None]:
        """The i2v image (keyframe 0), or the video to extend and its last frame (keyframe 0)."""
        if spec.mode == "i2v":
            from backend.media.uploads import load_image

            return load_image(Path(spec.image)), None
        if spec.mode == "extend":
            video = Path(spec.video)
            probe_video(video)  # a clear error before any model is loaded
            return Image.fromarray(last_frames(video, 1)[-1]), video
        return None, None


def _earlier_plan(previous: JobRecord | None) -> tuple[PromptAnalysis, Storyboard, StageRecord] | None:
    """The analysis, storyboard and analyse record an earlier run of the job made, if complete and readable."""
    if previous is None or previous.storyboard is None or previous.analysis is None:
        return None
    if previous.stages.analyze is None or not previous.storyboard.frames:
        return None
    known = {f.name for f in dataclasses.fields(PromptAnalysis)}
    try:
        analysis = PromptAnalysis(**{k: v for k, v in previous.analysis.items() if k in known})
    except TypeError:  # written by a release whose analysis had other fields: plan again
        return None
    return analysis, previous.storyboard, previous.stages.analyze

"""GPU benchmark of the whole studio pipeline, against plain diffusers calls in the same run.

    python -m bench.pipeline --size full|tiny [--stages keyframes,motion,finish] [--engines svd,ltx,wan,...]
        [--fast-paths all|none|compile,fbcache,...] [--budgets 8,12,24] [--max-steps N] [--json|--markdown]
    python -m bench.pipeline --size full --flops-only   # FLOPs per step of the full models; no GPU needed

Per stage (SDXL keyframes; motion engines SVD, CogVideoX, LTX-Video, SkyReels-V2 and Wan) it times the
studio's own stage code (``backend.stages``, plan from ``backend.memory``) against the plain diffusers
call (on the device, default SDPA, same dtype, shapes and steps); then a whole 10 s 1080p30
video through ``JobRunner`` against the same calls made plainly. FLOPs are counted on the real denoiser call,
MFU against the device's dense bf16 peak; budgets and fast paths need CUDA. ``--size full`` builds the
published architectures with random weights; ``--size tiny`` runs the same code on the CPU (output is noise).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from backend.memory import MemoryManager, MemoryPlan, apply_plan, detect_hardware, free_memory
from backend.memory.oom import error_summary
from backend.models.registry import model_for
from backend.paths import runtime_paths
from backend.prompting import analyze_prompt
from backend.record import ModelStageRecord, Storyboard, StoryboardFrame
from backend.spec import FinishOptions, JobSpec
from backend.stages import keyframes, motion
from backend.stages.context import StageContext
from backend.stages.finish import FinishTarget, finish
from backend.stages.keyframe_style import Consistency, prepare_consistency
from bench import report as rep
from bench import video
from bench.budgets import budget_rows, out_of_memory
from bench.configs import (
    PROMPT,
    SEED,
    STAGES,
    VIDEO,
    FramesClip,
    PipelineFactory,
    StageShape,
    condition_images,
    denoiser_of,
    plain_call,
    plain_ffmpeg,
)
from bench.flops import (
    DenoiserProbe,
    StepClock,
    Timed,
    device_peak,
    full_size_flops,
    header,
    mfu,
    peak_vram_gb,
    ratio,
    reset_peak,
    synchronize,
)
from bench.report import FAST_PATH_STAGES

STAGE_NAMES = ("keyframes", "motion", "finish")
ENGINE_NAMES = tuple(name for name in STAGES["full"] if name != "keyframes")  # svd, cogvideox, ltx, skyreels, wan
VIDEO_STAGES = ("keyframes", "svd")  # the whole video's models: kept cached; the other engines' are released


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args, self.size = args, args.size
        self.device = "cuda" if self.size == "full" else "cpu"  # the studio plans the tiny set on the CPU
        self.dtype = torch.bfloat16 if self.size == "full" else torch.float32
        self.models_root = runtime_paths().models
        self.factory = PipelineFactory(args.weights, self.models_root, self.device, self.dtype)
        self.hardware = detect_hardware()
        self.peak = device_peak(self.device, self.dtype, args.peak_tflops)
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
        self.model_set = "default" if self.size == "full" else "tiny"
        self.report: dict[str, Any] = {}

    # ---- one call of each kind ---------------------------------------------------------------------

    def shapes(self) -> list[StageShape]:
        names = (["keyframes"] if "keyframes" in self.args.stages else []) + (
            list(self.args.engines) if "motion" in self.args.stages else [])
        return [STAGES[self.size][name] for name in names]

    def spec(self, shape: StageShape, steps: int) -> JobSpec:
        engine = shape.stage if shape.stage != "keyframes" else "svd"
        return JobSpec(prompt=PROMPT, seed=SEED, steps=steps, engine=engine, model_set=self.model_set,
                       preset=shape.preset).validate()  # quick: the step-distilled model (ltx13b)

    def motion_choice(self, shape: StageShape, hardware: Any) -> motion.MotionChoice:
        spec = self.spec(shape, shape.steps)
        return motion.choose_motion(self.model_set, spec.engine, spec.preset, spec.fps, hardware)

    def workdir(self, shape: StageShape, hardware: Any = None) -> Path:
        """A fresh folder with the keyframes a motion stage is told about, written before any clock starts:
        one, or Wan's start and end (more where a budget caps the frames of a call, as a job would draw)."""
        folder = Path(tempfile.mkdtemp(prefix=f"{shape.stage}-", dir=self.tmp))
        if shape.stage != "keyframes":
            images = condition_images(shape)
            count = self.motion_choice(shape, hardware or self.hardware).keyframes_for(len(images), shape.frames)
            for i in range(count):
                images[i % len(images)].save(folder / f"keyframe_{i:02d}.png")
        return folder

    def studio(self, shape: StageShape, steps: int, folder: Path, clock: StepClock, manager: MemoryManager,
               ) -> ModelStageRecord:
        """The studio's stage code for one keyframe or one motion segment; returns the stage record."""
        spec = self.spec(shape, steps)
        ctx = StageContext(job_id="bench", stage=shape.stage, spec=spec, workdir=folder,
                           cancel_event=threading.Event(), memory=manager,
                           sink=lambda f, m, step, t, p: clock.mark() if step is not None else None)
        analysis = analyze_prompt(spec.prompt, spec.negative_prompt)
        if shape.stage == "keyframes":
            board = Storyboard(frames=[StoryboardFrame(0.0, analysis.enhanced_prompt, seed=SEED)])
            return keyframes.run(ctx, keyframes.KeyframeInputs(analysis, board, shape.width / shape.height)).record
        choice = self.motion_choice(shape, manager.hardware)
        paths = sorted(folder.glob("keyframe_*.png"))
        return motion.run(ctx, motion.MotionInputs(analysis, paths, shape.frames, choice)).record

    def plain(self, pipe: Any) -> Any:
        """The pipeline as diffusers leaves it: on the device, no tiling, slicing or chunking, no IP-Adapter."""
        prepare_consistency(pipe, Consistency("independent", "the plain pipeline"), runtime_paths().models)
        apply_plan(pipe, MemoryPlan(level=self.device if self.device == "cpu" else "gpu", device=self.device,
                                    dtype=str(self.dtype).replace("torch.", "")))
        return pipe

    def manager(self, pipe: Any | None = None, hardware: Any = None, placer: Callable = apply_plan) -> MemoryManager:
        """A fresh memory manager (so the plan is applied again) whose loader hands out our pipelines."""
        loader = (lambda ref, root, dtype: pipe) if pipe is not None else self.factory.loader
        return MemoryManager(hardware or self.hardware, self.models_root, loader=loader, placer=placer)

    def timed(self, run: Callable[[StepClock], Any], probes: list[DenoiserProbe], *, steps: int,
              steps_run: int) -> tuple[Timed, Any]:
        free_memory()
        reset_peak(self.device)
        for probe in probes:
            probe.reset()
        clock = StepClock(self.device)
        synchronize(self.device)
        started = time.perf_counter()
        result = run(clock)
        synchronize(self.device)
        seconds = time.perf_counter() - started
        return Timed.of(seconds, clock, steps=steps, steps_run=steps_run, calls=sum(p.calls for p in probes),
                            peak_gb=peak_vram_gb(self.device)), result

    # ---- stage rows ----------------------------------------------------------------------------------

    def stage_row(self, shape: StageShape) -> dict[str, Any]:
        pipe = self.factory.get(shape.model_key)
        probe = DenoiserProbe(denoiser_of(pipe))
        steps_run = min(shape.steps, self.args.max_steps or shape.steps)
        images = condition_images(shape)

        def studio(steps: int) -> Callable[[StepClock], Any]:
            folder = self.workdir(shape)
            return lambda clock: self.studio(shape, steps, folder, clock, self.manager())

        def baseline(steps: int) -> Callable[[StepClock], Any]:
            return lambda clock: plain_call(self.plain(pipe), replace(shape, steps=steps), images[0], clock,
                                            last=images[1] if len(images) > 1 else None)

        for _ in range(self.args.warmup):  # first calls pay for kernel selection and lazy initialisation
            studio(min(2, steps_run))(StepClock(self.device))
            baseline(min(2, steps_run))(StepClock(self.device))
        runs: dict[str, list[Timed]] = {"studio": [], "baseline": []}
        errors: dict[str, str] = {}
        for _ in range(self.args.repeat):  # alternate, so drift hits both sides alike
            for side, make in (("studio", studio), ("baseline", baseline)):
                try:
                    timed, record = self.timed(make(steps_run), [probe], steps=shape.steps, steps_run=steps_run)
                except Exception as exc:  # noqa: BLE001 - an OOM is a reported failure; anything else re-raises
                    if not out_of_memory(exc):
                        raise
                    errors[side] = error_summary(exc)  # e.g. the plain call on a GPU smaller than the model
                    continue
                if side == "studio":
                    timed.plan = MemoryPlan.from_dict(record.memory_plan).describe()
                runs[side].append(timed)
        # Calls per step: 2 where the pipeline runs CFG as two calls of batch 1 (Wan, SkyReels).
        per_step = next((t[0].denoiser_calls for t in runs.values() if t), steps_run) / max(1, steps_run)
        flops_call, batch = probe.flops_per_call(on_meta=self.device == "cuda"), probe.batch
        flops_step = round(flops_call * per_step) if flops_call else None
        probe.close()
        row: dict[str, Any] = {"stage": shape.stage, "model": shape.model_key, "label": shape.ref.label,
                               "shape": {"width": shape.width, "height": shape.height, "frames": shape.frames},
                               "steps": shape.steps, "steps_run": steps_run, "cfg_batch": batch,
                               "calls_per_step": per_step, "flops_per_step": flops_step}
        for side, timings in runs.items():
            if not timings:
                row[side] = {"seconds": None, "error": errors[side], "denoiser_calls": None}
                continue
            best = min(timings, key=lambda t: t.seconds)
            calls = best.denoiser_calls * shape.steps / max(1, steps_run)  # scaled like the seconds
            best.flops_per_run = flops_call * calls if flops_call else None
            best.mfu = mfu(best.flops_per_run, best.seconds, self.peak)
            best.mfu_denoise = mfu(flops_step, best.seconds_per_step, self.peak)
            row[side] = best.to_dict()
        row["ratio"] = ratio(row["studio"]["seconds"], row["baseline"]["seconds"])
        row["same_work"] = row["studio"]["denoiser_calls"] == row["baseline"]["denoiser_calls"]
        if shape.stage not in VIDEO_STAGES:
            self.factory.release(shape.model_key)  # not part of the standard video; give its memory back
            free_memory()
        return row

    def finish_frames(self) -> tuple[FramesClip, FinishTarget]:
        """The clip finishing gets in the standard video: SVD's frames at its rate, to 1080p30."""
        video, ref = VIDEO[self.size], model_for(self.model_set, "svd")
        clip = FramesClip(max(2, round(video.duration * ref.fps)), ref.width, ref.height, ref.fps)
        return clip, FinishTarget(video.width, video.height, video.fps, round(video.duration * video.fps))

    def finish_once(self, clip: Any, target: FinishTarget, options: FinishOptions) -> tuple[float, Any]:
        folder = Path(tempfile.mkdtemp(prefix="finish-", dir=self.tmp))
        started = time.perf_counter()
        result = finish(clip, target=target, options=options, workdir=folder / "work",
                        output_path=folder / "out" / "video.mp4", metadata={"title": "bench"})
        return time.perf_counter() - started, result

    def finish_row(self) -> dict[str, Any]:
        clip, target = self.finish_frames()
        studio, raw = [], []
        for _ in range(self.args.repeat):
            seconds, result = self.finish_once(clip, target, FinishOptions())
            studio.append(seconds)
            raw.append(plain_ffmpeg(list(clip.frames()), clip.fps, result.filter_graph, self.tmp, target.fps))
        s, b = round(min(studio), 4), round(min(raw), 4)
        return {"stage": "finish", "model": "ffmpeg", "label": "finish(): graph + libx264, verified",
                "shape": {"width": target.width, "height": target.height, "frames": target.total_frames},
                "studio": {"seconds": s, "plan": f"{result.format} {result.codec}"}, "baseline": {"seconds": b},
                "ratio": ratio(s, b), "same_work": True, "filter_graph": result.filter_graph}

    # ---- the whole video (bench.video) -----------------------------------------------------------------

    def video_row(self, hardware: Any = None, prebuilt: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole video through JobRunner, then replayed plainly (studio side only with ``prebuilt``)."""
        return video.video_row(self, hardware, prebuilt)

    # ---- the report -------------------------------------------------------------------------------------

    def checkpoint(self, section: str | None = None, value: Any = None) -> None:
        """Write the report so far to ``--out``: a run cut short (a timeout) still leaves its finished rows."""
        if section is not None:
            self.report[section] = value
        if self.args.out:
            self.args.out.write_text(json.dumps({**self.report, "partial": True}, indent=2) + "\n", encoding="utf-8")

    def run(self) -> dict[str, Any]:
        self.report = report = header(self)
        report["stages"] = []
        for shape in [] if self.args.no_stage_rows else self.shapes():
            try:
                report["stages"].append(self.stage_row(shape))
            except Exception as exc:  # noqa: BLE001 - on a one-shot GPU run a broken stage must not cost the rest
                logging.getLogger(__name__).exception("stage %s failed", shape.stage)
                size = {"width": shape.width, "height": shape.height, "frames": shape.frames}
                report["stages"].append({"stage": shape.stage, "model": shape.model_key, "shape": size,
                                         "steps": shape.steps, "note": f"failed: {error_summary(exc)}"})
            if "studio" not in report["stages"][-1]:  # failed: its pipeline goes (outside the except block)
                self.factory.release(shape.model_key)
                free_memory()
            self.checkpoint()
        if "finish" in self.args.stages and not self.args.no_stage_rows:
            report["stages"].append(self.finish_row())
        if set(STAGE_NAMES) <= set(self.args.stages) and not self.args.no_video:
            self.checkpoint("video", self.video_row())
        self.checkpoint("fast_paths", rep.fast_path_rows(self))
        report["budgets"] = budget_rows(self)  # checkpoints after each row
        report["targets"] = rep.evaluate_targets(report)
        return report


# ---- helpers ---------------------------------------------------------------------------------------------


# ---- the command line ----------------------------------------------------------


def _csv(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = list(choices) if text == "all" else [] if text == "none" else [t for t in text.split(",") if t]
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; choose from {', '.join(choices)}, all, none")
        return items
    return parse


def _numbers(text: str) -> list[int]:
    return [] if text == "none" else [int(t) for t in text.split(",") if t]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("full", "tiny"), required=True, help="full (CUDA) or tiny (CPU test set)")
    parser.add_argument("--stages", type=_csv(STAGE_NAMES), default=list(STAGE_NAMES), help="default: all")
    parser.add_argument("--engines", type=_csv(ENGINE_NAMES), default=list(ENGINE_NAMES),
                        help="motion engines benchmarked as stages, default: all (the whole video uses svd)")
    parser.add_argument("--no-stage-rows", action="store_true",
                        help="skip the studio-vs-baseline stage rows (run only the video, budgets or fast paths)")
    parser.add_argument("--fast-paths", type=_csv(tuple(FAST_PATH_STAGES)), default=list(FAST_PATH_STAGES),
                        help=f"{', '.join(FAST_PATH_STAGES)}, all (default) or none; measured on CUDA only")
    parser.add_argument("--fast-paths-on-cpu", dest="cpu_fast_paths", action="store_true", help="plumbing check")
    parser.add_argument("--budgets", type=_numbers, default=[8, 12, 24], help="VRAM budgets in GB (CUDA only)")
    parser.add_argument("--budget-video", type=_numbers, default=[8], help="budgets that also run the whole video")
    parser.add_argument("--budget-steps", type=int, default=3, help="steps run under a budget (scaled to the full)")
    parser.add_argument("--max-steps", type=int, default=None, help="steps run per stage call; seconds are scaled")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per side, best counts (full 2, tiny 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed 2-step runs per side (full 1, tiny 0)")
    parser.add_argument("--weights", choices=("random", "local"), default="random", help="local: downloaded models")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the device peak for MFU")
    parser.add_argument("--no-video", action="store_true", help="skip the whole-video comparison")
    parser.add_argument("--flops-only", action="store_true", help="full-size FLOPs on the meta device; no GPU")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the report as JSON")
    out.add_argument("--markdown", action="store_true", help="print the report as markdown (docs/PERFORMANCE.md)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON report to this file")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.repeat = args.repeat or (2 if args.size == "full" else 1)
    args.warmup = (1 if args.size == "full" else 0) if args.warmup is None else args.warmup
    if min(args.repeat, args.budget_steps, args.max_steps or 1) < 1 or args.warmup < 0:
        parser.error("--repeat, --budget-steps and --max-steps must be positive, --warmup not negative")
    import torch

    if args.size == "full" and not args.flops_only and not torch.cuda.is_available():
        parser.error("--size full needs a CUDA GPU (use --size tiny, or --flops-only for the FLOP counts)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    with contextlib.redirect_stdout(sys.stderr):  # libraries print; stdout carries only the report
        if args.flops_only:
            report = full_size_flops(runtime_paths().models)
        else:
            import torch

            bench, threads = Bench(args), torch.get_num_threads()
            if args.size == "tiny":  # tiny layers gain nothing from threads; on a busy CI box spinning ones cost 2-3x
                torch.set_num_threads(1)
            try:
                report = bench.run()
            finally:
                torch.set_num_threads(threads)
                shutil.rmtree(bench.tmp, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.json or args.flops_only:
        print(json.dumps(report, indent=2))
    else:
        print(rep.render_markdown(report) if args.markdown else rep.render_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

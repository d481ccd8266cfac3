"""Headless command line on the same orchestrator the studio uses: ``python -m backend ...``."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from backend.spec import ENGINES, MODEL_SETS, MODES, PRESET_NAMES, JobSpec, SpecError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


class CliError(Exception):
    """A one-line error for the terminal (bad input, missing file, ...)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend", description="Local AI video studio (headless).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="make a video from a prompt (or a batch manifest)")
    gen.add_argument("--prompt", help="what the video shows")
    gen.add_argument("--negative", default="", help="what to avoid")
    gen.add_argument("--mode", choices=MODES, default="t2v")
    gen.add_argument("--image", type=Path, help="start image for --mode i2v")
    gen.add_argument("--video", type=Path, help="video to extend for --mode extend")
    gen.add_argument("--models", choices=MODEL_SETS, default="default",
                     help="'tiny' = random-weight test models (output is noise)")
    gen.add_argument("--preset", choices=PRESET_NAMES, default="standard")
    gen.add_argument("--duration", type=float, default=4.0, help="seconds")
    gen.add_argument("--fps", type=int, default=24)
    gen.add_argument("--size", default="1920x1080", help="output WIDTHxHEIGHT")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--steps", type=int)
    gen.add_argument("--guidance", type=float)
    gen.add_argument("--keyframes", type=int)
    gen.add_argument("--engine", choices=ENGINES, default="svd")
    gen.add_argument("--motion-strength", type=float, default=0.5)
    gen.add_argument("--manifest", type=Path, help="JSON file with a list of job specs (batch)")
    gen.add_argument("--json", action="store_true", help="print the job record(s) as JSON")

    resume = sub.add_parser("resume", help="resume an interrupted, failed or cancelled job (finished stages are kept)")
    resume.add_argument("job_id", help="job id (or its first 8 characters, as `jobs` shows)")
    resume.add_argument("--json", action="store_true")

    cancel = sub.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id")

    jobs = sub.add_parser("jobs", help="list jobs (history and queue)")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--json", action="store_true")

    for module, adder, _ in MODULE_COMMANDS.values():
        getattr(importlib.import_module(module), adder)(sub)
    return parser


# Subcommands that live in their own modules, each owning its arguments: name -> (module, adder, runner).
MODULE_COMMANDS: dict[str, tuple[str, str, str]] = {
    "finish": ("backend.finish_cli", "add_finish_parser", "run_finish"),
    "plan": ("backend.plan_cli", "add_plan_parser", "run_plan"),
    "models": ("backend.models_cli", "add_models_parser", "run_models"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "generate":
            return cmd_generate(args)
        if args.command == "jobs":
            return cmd_jobs(args)
        if args.command == "resume":
            return cmd_resume(args)
        if args.command == "cancel":
            return cmd_cancel(args)
        module, _, runner = MODULE_COMMANDS[args.command]
        return getattr(importlib.import_module(module), runner)(args)
    except (CliError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


# --- generate -----------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    from backend.orchestrator import VideoGenerator

    generator = VideoGenerator()
    try:
        specs = (_specs_from_manifest(args.manifest, generator) if args.manifest
                 else [_spec_from_args(args, generator)])
        job_ids = [generator.submit(spec) for spec in specs]  # all validated before anything runs
    except BaseException:
        generator.shutdown()
        raise
    return _follow_all(generator, job_ids, as_json=args.json)


def _follow_all(generator: Any, job_ids: list[str], *, as_json: bool) -> int:
    if not generator.has_worker:
        print("note: another studio process is running the queue; waiting for it", file=sys.stderr)
    results = []
    try:
        for job_id in job_ids:
            results.append(_follow(generator, job_id, quiet=as_json))
    except KeyboardInterrupt:
        for job_id in job_ids:
            generator.cancel(job_id)
        generator.shutdown()
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    generator.shutdown()
    for status in results:
        if as_json:
            print(json.dumps(job_summary(status), ensure_ascii=False))
        elif status.state == "done":
            print(status.output)
        else:
            print(f"error: job {status.id} {status.state}: {status.error or ''}".rstrip(": "), file=sys.stderr)
    if all(s.state == "done" for s in results):
        return EXIT_OK
    return EXIT_CANCELLED if any(s.state == "cancelled" for s in results) else EXIT_FAILED


def _spec_from_args(args: argparse.Namespace, generator: Any) -> JobSpec:
    if not args.prompt:
        raise CliError("--prompt is required (or --manifest FILE).")
    width, height = parse_size(args.size)
    image = _stored_input(args.image, "image", generator) if args.image else None
    video = _stored_input(args.video, "video", generator) if args.video else None
    return JobSpec(
        prompt=args.prompt, negative_prompt=args.negative, mode=args.mode, preset=args.preset,
        duration=args.duration, fps=args.fps, width=width, height=height, seed=args.seed, steps=args.steps,
        guidance=args.guidance, keyframes=args.keyframes, engine=args.engine, motion_strength=args.motion_strength,
        image=image, video=video, model_set=args.models,
    ).validate()


def _specs_from_manifest(path: Path, generator: Any) -> list[JobSpec]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read manifest {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise CliError(f"manifest {path} is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # absurdly deep nesting: json gives up before we could
        raise CliError(f"manifest {path} is nested too deeply to be a list of job specs") from exc
    if not isinstance(data, list) or not data:
        raise CliError("a manifest must be a non-empty JSON list of job specs")
    specs = []
    for index, item in enumerate(data):
        try:
            spec = JobSpec.from_dict(item)
            if spec.image:
                spec = _replace(spec, image=_stored_input(Path(spec.image), "image", generator))
            if spec.video:
                spec = _replace(spec, video=_stored_input(Path(spec.video), "video", generator))
            specs.append(spec.validate())
        except SpecError as exc:
            raise CliError(f"manifest item {index}: {exc}") from exc
    return specs


def _replace(spec: JobSpec, **changes: Any) -> JobSpec:
    from dataclasses import replace

    return replace(spec, **changes)


def _stored_input(path: Path, kind: str, generator: Any) -> str:
    """Copy a user's file into uploads/ after checking its content, like the UI does."""
    from backend.uploads import UploadError, store_image, store_video

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {kind} {path}: {exc.strerror}") from exc
    store = store_image if kind == "image" else store_video
    try:
        return str(store(data, path.name, generator.paths.uploads).path)
    except UploadError as exc:
        raise CliError(f"{kind} {path}: {exc}") from exc


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError as exc:
        raise CliError(f"--size must look like 1920x1080, not {text!r}") from exc
    return width, height


def _follow(generator: Any, job_id: str, *, quiet: bool) -> Any:
    """Wait for a job, drawing a one-line progress bar on stderr."""
    interactive = sys.stderr.isatty() and not quiet
    last_line = ""
    while True:
        status = generator.status(job_id)
        if not status.is_active:
            break
        if interactive:
            line = progress_line(status)
            if line != last_line:
                sys.stderr.write("\r" + line.ljust(100)[:100])
                sys.stderr.flush()
                last_line = line
        time.sleep(0.25)
    if interactive:
        sys.stderr.write("\r" + " " * 100 + "\r")
    return status


def progress_line(status: Any) -> str:
    width = 24
    filled = int(status.fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    eta = f" ETA {format_seconds(status.eta_seconds)}" if status.eta_seconds is not None else ""
    return f"[{bar}] {status.fraction:4.0%} {status.stage}: {status.message}{eta}"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def job_summary(status: Any) -> dict[str, Any]:
    record = status.record or {}
    return {
        "id": status.id,
        "status": status.state,
        "output": status.output,
        "sidecar": status.sidecar,
        "error": status.error,
        "seed": status.spec.get("seed"),
        "format": record.get("format"),
        "stages": {name: data.get("seconds") for name, data in record.get("stages", {}).items()},
        "seconds": round(status.elapsed, 3) if status.elapsed is not None else None,
        "note": record.get("note"),
    }


# --- resume / cancel ---------------------------------------------------------------------
def _find_job(generator: Any, prefix: str) -> str:
    matches = [s.id for s in generator.history(limit=100_000) if s.id.startswith(prefix)]
    if len(matches) != 1:
        raise CliError(f"no job matches {prefix!r}" if not matches else f"{prefix!r} matches several jobs")
    return matches[0]


def cmd_resume(args: argparse.Namespace) -> int:
    from backend.orchestrator import VideoGenerator

    generator = VideoGenerator()
    job_id = _find_job(generator, args.job_id)
    if not generator.requeue(job_id):
        state = generator.status(job_id).state
        generator.shutdown()
        raise CliError(f"job {job_id[:8]} is {state}; only interrupted, failed or cancelled jobs can be resumed")
    return _follow_all(generator, [job_id], as_json=args.json)


def cmd_cancel(args: argparse.Namespace) -> int:
    from backend.orchestrator import VideoGenerator

    generator = VideoGenerator(start_worker=False)
    job_id = _find_job(generator, args.job_id)
    if not generator.cancel(job_id):
        raise CliError(f"job {job_id[:8]} is not queued or running")
    print(f"cancel requested for {job_id[:8]}")
    return EXIT_OK


# --- jobs ---------------------------------------------------------------------------------
def cmd_jobs(args: argparse.Namespace) -> int:
    from backend.orchestrator import VideoGenerator

    generator = VideoGenerator(start_worker=False)
    jobs = generator.history(limit=args.limit)
    if args.json:
        print(json.dumps([job_summary(s) | {"prompt": s.spec.get("prompt")} for s in jobs], ensure_ascii=False))
        return EXIT_OK
    if not jobs:
        print("no jobs yet")
    for status in jobs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(status.created))
        prompt = status.spec.get("prompt", "")
        print(f"{status.id[:8]}  {when}  {status.state:<11} {prompt[:50]!r}  {status.output or status.error or ''}")
    return EXIT_OK

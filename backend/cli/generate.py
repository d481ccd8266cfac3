"""``generate``: one video from the command line, or a batch from a JSON manifest of job specs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.cli.common import EXIT_CANCELLED, CliError, follow_all
from backend.cli.manifest import load_manifest, stored_input
from backend.spec import CONSISTENCY, ENGINES, MODEL_SETS, MODES, PLANNERS, PRESET_NAMES, JobSpec, LoraChoice

if TYPE_CHECKING:  # pragma: no cover
    from backend.jobs.orchestrator import VideoGenerator


def add_parser(sub: Any) -> None:
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
    gen.add_argument("--engine", choices=ENGINES, default="auto",
                     help="motion engine; auto = the most storyboard-faithful one that fits this machine")
    gen.add_argument("--motion-strength", type=float, default=0.5)
    gen.add_argument("--review", action="store_true",
                     help="stop after the keyframes so you can review and edit them (then: continue JOB)")
    gen.add_argument("--planner", choices=PLANNERS, default="rules",
                     help="who writes the storyboard's prompts: rules (instant) or llm (a local instruct model)")
    gen.add_argument("--consistency", choices=CONSISTENCY, default="auto",
                     help="how later keyframes keep the subject: auto, ip-adapter, img2img or independent")
    gen.add_argument("--lora", action="append", default=[], metavar="FILE[:WEIGHT[:TARGET]]",
                     help="a LoRA file in models/loras/ (weight 0.8, target keyframes unless given); repeatable")
    gen.add_argument("--manifest", type=Path, help="JSON file with a list of job specs (batch)")
    gen.add_argument("--json", action="store_true", help="print the job record(s) as JSON")
    gen.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from backend.jobs.orchestrator import VideoGenerator  # loads the job layer only for commands that need it

    generator = VideoGenerator()
    try:
        specs = (_specs_from_manifest(args.manifest, generator) if args.manifest
                 else [_spec_from_args(args, generator)])
        job_ids = generator.submit_all(specs)  # all validated first, then queued in one transaction
    except KeyboardInterrupt:
        generator.shutdown()
        print("cancelled: nothing was queued", file=sys.stderr)
        return EXIT_CANCELLED
    except BaseException:
        generator.shutdown()
        raise
    return follow_all(generator, job_ids, as_json=args.json)


def _spec_from_args(args: argparse.Namespace, generator: "VideoGenerator") -> JobSpec:
    if not args.prompt:
        raise CliError("--prompt is required (or --manifest FILE).")
    width, height = parse_size(args.size)
    image = _stored_input(args.image, "image", generator) if args.image else None
    video = _stored_input(args.video, "video", generator) if args.video else None
    return JobSpec(
        prompt=args.prompt, negative_prompt=args.negative, mode=args.mode, preset=args.preset,
        duration=args.duration, fps=args.fps, width=width, height=height, seed=args.seed, steps=args.steps,
        guidance=args.guidance, keyframes=args.keyframes, engine=args.engine, motion_strength=args.motion_strength,
        image=image, video=video, model_set=args.models, review=args.review, planner=args.planner,
        consistency=args.consistency, loras=tuple(parse_lora(text) for text in args.lora),
    ).validate()


def parse_lora(text: str) -> LoraChoice:
    """``name.safetensors[:weight[:target]]`` → a LoRA choice (validated with the spec)."""
    name, _, rest = text.partition(":")
    weight, _, target = rest.partition(":")
    try:
        return LoraChoice(name, float(weight) if weight else 0.8, target or "keyframes")
    except ValueError as exc:
        raise CliError(f"--lora {text!r}: the weight must be a number (e.g. style.safetensors:0.7)") from exc


def _specs_from_manifest(path: Path, generator: "VideoGenerator") -> list[JobSpec]:
    """All the manifest's specs, or a CliError naming the first bad item (a batch is all or none)."""
    items = load_manifest(path, generator.paths.uploads)
    bad = next((item for item in items if not item.ok), None)
    if bad is not None:
        raise CliError(bad.error or f"manifest item {bad.index} is invalid")
    return [item.spec for item in items if item.spec is not None]


def _stored_input(path: Path, kind: str, generator: "VideoGenerator") -> str:
    """Copy a user's file into uploads/ after checking its content, like the UI does."""
    return stored_input(path, kind, generator.paths.uploads)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError as exc:
        raise CliError(f"--size must look like 1920x1080, not {text!r}") from exc
    return width, height

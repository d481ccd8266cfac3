"""`python -m backend plan`: the memory plan for this machine, or a simulated one, before any job runs.

    python -m backend plan                      # this machine, default job (4 s, standard, SVD)
    python -m backend plan --vram-gb 8 --json   # a simulated 8 GB GPU, machine-readable
    python -m backend plan --vram-gb 0          # a machine without a GPU
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from backend.errors import SpecError
from backend.spec import ENGINES, MODEL_SETS, MODES, PRESET_NAMES, JobSpec

PREVIEW_PROMPT = "plan preview"
# Registry roles shown in the per-model table, in the order a job uses them.
TABLE_ROLES = ("keyframes", "keyframes-quick", "ltx", "ltx-quick", "wan", "skyreels", "svd", "cogvideox")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "plan", help="show the memory plan per stage for this machine or a simulated one",
        description="Show, per stage, the memory level, estimated peak VRAM/RAM and ETA class.")
    machine = parser.add_argument_group("machine (defaults: detected)")
    machine.add_argument("--vram-gb", type=float, help="simulate a GPU with this much free VRAM (0 = no GPU)")
    machine.add_argument("--ram-gb", type=float, help="simulate this much system RAM")
    machine.add_argument("--reserve-gb", type=float,
                         help="VRAM to leave to other programs (default: $STUDIO_VRAM_RESERVE_GB or 0)")
    machine.add_argument("--compute-capability", type=_capability, metavar="MAJOR.MINOR",
                         help="GPU generation, e.g. 7.5 (fp16) or 8.6 (bf16)")
    job = parser.add_argument_group("job (defaults: a 4 s standard text-to-video)")
    job.add_argument("--preset", choices=PRESET_NAMES, default="standard")
    job.add_argument("--engine", choices=ENGINES, default="auto")
    job.add_argument("--mode", choices=MODES, default="t2v")
    job.add_argument("--duration", type=float, default=4.0, help="seconds")
    job.add_argument("--fps", type=int, default=24)
    job.add_argument("--width", type=int, default=1920)
    job.add_argument("--height", type=int, default=1080)
    job.add_argument("--keyframes", type=int)
    job.add_argument("--model-set", choices=MODEL_SETS, default="default")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from backend.memory.hardware import detect_hardware
    from backend.memory.preflight import preflight

    try:
        _check_machine(args)
        spec = JobSpec(
            prompt=PREVIEW_PROMPT, mode=args.mode, preset=args.preset, duration=args.duration, fps=args.fps,
            width=args.width, height=args.height, engine=args.engine, keyframes=args.keyframes,
            model_set=args.model_set,
            # The plan does not read the files; validation only needs to know they would be there.
            image="preview.png" if args.mode == "i2v" else None, video="preview.mp4" if args.mode == "extend" else None,
        ).validate()
    except SpecError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    hardware = detect_hardware(args.vram_gb, args.ram_gb, reserve_gb=args.reserve_gb,
                               compute_capability=args.compute_capability)
    result = preflight(spec, hardware)
    models = model_table(hardware, spec.model_set)
    if args.json:
        print(json.dumps({"preflight": result.to_dict(), "models": models}, indent=2))
        return 0
    print("\n".join(result.lines()))
    print()
    print("Every engine on this machine (native size, one call):")
    for row in models:
        cap = f", capped to {row['cap']['width']}x{row['cap']['height']}x{row['cap']['frames']}" if row["cap"] else ""
        fits = "" if row["fits"] else "  DOES NOT FIT"
        print(f"  {row['role']:<16} {row['model']:<18} {row['settings']:<62} "
              f"{row['vram_gb']:>5.1f} GB VRAM {row['ram_gb']:>5.1f} GB RAM{cap}{fits}")
    return 0


def model_table(hardware: Any, model_set: str) -> list[dict]:
    """Each role's model with the plan it would get on ``hardware`` (the motion engines side by side)."""
    from backend.memory.plans import fit_plan
    from backend.models.registry import model_for

    rows = []
    for role in TABLE_ROLES:
        ref = model_for(model_set, role)
        plan = fit_plan(hardware, ref)
        cap = ({"width": plan.cap_width, "height": plan.cap_height, "frames": plan.cap_frames}
               if plan.capped else None)
        rows.append({"role": role, "model": ref.key, "level": plan.level, "settings": plan.describe(),
                     "vram_gb": plan.est_vram_gb, "ram_gb": plan.est_ram_gb, "fits": plan.fits, "cap": cap,
                     "plan": plan.to_dict()})
    return rows


def _check_machine(args: argparse.Namespace) -> None:
    for name in ("vram_gb", "ram_gb", "reserve_gb"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 4096:
            raise SpecError(name, f"--{name.replace('_', '-')} must be between 0 and 4096 GB; got {value:g}.")
    if args.ram_gb is not None and args.ram_gb == 0:
        raise SpecError("ram_gb", "--ram-gb must be more than 0.")


def _capability(text: str) -> tuple[int, int]:
    try:
        major, minor = (int(part) for part in text.split("."))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a compute capability like 8.6") from None
    return major, minor

"""`python -m backend analyze "PROMPT"`: the shot and its storyboard plan, before any job runs.

    python -m backend analyze "a dragon made of smoke uncoiling above a burning castle" --keyframes 4
    python -m backend analyze "two astronauts shake hands" --json
    python -m backend analyze "ocean waves at dusk" --planner llm --models tiny   # plumbing only: garbage

Prints the analysis (subject, setting, action, style, lighting, camera), the enhanced and negative
prompts, one prompt per keyframe with its time, the motion prompt of each segment, and which planner
wrote the storyboard (with the reason when the LLM's answer was not used).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from backend.spec import MODEL_SETS, PLANNERS, JobSpec

FIELDS = ("subject", "setting", "action", "style", "lighting", "camera")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "analyze", help="show how a prompt is understood and the storyboard it becomes",
        description="Analyse a prompt and plan its storyboard: a prompt per keyframe and per segment.")
    parser.add_argument("prompt", help="what the video shows")
    parser.add_argument("--keyframes", type=int, help="number of keyframes (default: what a job of --duration uses)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds (default 4)")
    parser.add_argument("--negative", default="", help="what to avoid")
    parser.add_argument("--enhanced", help="your own enhanced prompt, used as keyframe 0 as written")
    parser.add_argument("--planner", choices=PLANNERS, default="rules",
                        help="rules: instant, no model; llm: a local instruct model (falls back to rules)")
    parser.add_argument("--models", choices=MODEL_SETS, default="default",
                        help="for --planner llm: 'tiny' = a random-weight test model (its plan is garbage)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from backend.prompting import plan_shot

    # The job spec's checks: a bad prompt, duration or keyframe count reads as it would for `generate`.
    spec = JobSpec(prompt=args.prompt, negative_prompt=args.negative, duration=args.duration,
                   keyframes=args.keyframes, enhanced_prompt=args.enhanced, planner=args.planner,
                   model_set=args.models).validate()
    shape = {"keyframes": spec.keyframe_count(), "duration": spec.duration, "negative_prompt": spec.negative_prompt,
             "enhanced_override": spec.enhanced_prompt}
    if spec.planner == "llm":
        from backend.models.llm_planner import plan_shot_with_llm
        from backend.paths import runtime_paths

        plan = plan_shot_with_llm(spec.prompt, model_set=spec.model_set, models_root=runtime_paths().models, **shape)
    else:
        plan = plan_shot(spec.prompt, **shape)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(describe(plan)))
    return 0


def describe(plan: Any) -> list[str]:
    """The plan as readable lines."""
    analysis = plan.analysis
    lines = [f"Planner:   {plan.planner}"]
    if plan.fallback:
        lines.append(f"           ({plan.fallback})")
    lines += [f"{name.capitalize() + ':':<10} {getattr(analysis, name)}" for name in FIELDS]
    lines += ["", "Enhanced prompt:", f"  {analysis.enhanced_prompt}",
              "Negative prompt:", f"  {analysis.negative_prompt}", "", "Keyframes:"]
    lines += [f"  {frame.time:6.2f} s  {frame.prompt}" for frame in plan.keyframes]
    lines += ["", "Segments (motion between keyframes):"]
    times = [frame.time for frame in plan.keyframes]
    for i, text in enumerate(plan.segment_prompts):
        span = f"{times[i]:.2f}-{times[i + 1]:.2f} s" if i + 1 < len(times) else "whole shot"
        lines.append(f"  {span:<14} {text}")
    return lines

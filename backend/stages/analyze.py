"""Analyse: the prompt becomes a shot (subject, setting, action, style, lighting, camera) and a storyboard
plan: one prompt per keyframe and one motion prompt per segment, plus the enhanced and negative prompts.

The rule-based planner is instant and needs no model; the LLM planner loads a small instruct model for
this one call and frees it. When the LLM's answer fails validation the rules write the storyboard, the
record says why, and the job log says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.models.llm_planner import plan_shot_with_llm
from backend.paths import runtime_paths
from backend.prompting import PromptAnalysis, ShotPlan, plan_shot
from backend.record import AnalyzeRecord
from backend.stages.context import StageContext


@dataclass(frozen=True)
class AnalyzeInputs:
    prompt: str
    negative_prompt: str = ""
    enhanced_override: str | None = None  # the user's own edit of the enhanced prompt, used verbatim
    keyframes: int = 1
    duration: float = 4.0  # seconds: the keyframes are spread from 0 to here
    planner: str = "rules"  # "rules" | "llm"
    model_set: str = "default"  # which planner LLM: the real one, or the tiny random-weight twin
    models_root: Path | None = None  # where the planner LLM lives; None: the studio's models folder


@dataclass(frozen=True)
class AnalyzeResult:
    analysis: PromptAnalysis
    plan: ShotPlan
    record: AnalyzeRecord


def run(ctx: StageContext, inputs: AnalyzeInputs) -> AnalyzeResult:
    """1. plan with the chosen planner; 2. log a fallback; 3. the record says who wrote the storyboard."""
    ctx.check_cancelled()
    if inputs.planner == "llm":
        ctx.report(0.0, "planning the storyboard with the LLM")
        plan = plan_shot_with_llm(
            inputs.prompt, keyframes=inputs.keyframes, duration=inputs.duration,
            negative_prompt=inputs.negative_prompt, enhanced_override=inputs.enhanced_override,
            model_set=inputs.model_set, models_root=inputs.models_root or runtime_paths().models)
    else:
        plan = plan_shot(inputs.prompt, keyframes=inputs.keyframes, duration=inputs.duration,
                         negative_prompt=inputs.negative_prompt, enhanced_override=inputs.enhanced_override)
    if plan.fallback:
        ctx.log(f"{plan.fallback[0].upper()}{plan.fallback[1:]}.")
    ctx.report(1.0, f"storyboard by {plan.planner}")
    record = AnalyzeRecord(enhanced_prompt=plan.analysis.enhanced_prompt, planner=plan.planner,
                           planner_fallback=plan.fallback)
    return AnalyzeResult(plan.analysis, plan, record)

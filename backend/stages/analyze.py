"""Analyse: the prompt becomes a shot (subject, setting, action, style, lighting), an enhanced prompt
and a negative prompt. Pure text work, no model: the keyframe and motion stages read its result.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.prompting import PromptAnalysis, analyze_prompt
from backend.record import AnalyzeRecord
from backend.stages.context import StageContext


@dataclass(frozen=True)
class AnalyzeInputs:
    prompt: str
    negative_prompt: str = ""
    enhanced_override: str | None = None  # the user's own edit of the enhanced prompt, used verbatim


@dataclass(frozen=True)
class AnalyzeResult:
    analysis: PromptAnalysis
    record: AnalyzeRecord


def run(ctx: StageContext, inputs: AnalyzeInputs) -> AnalyzeResult:
    """Rule-based analysis; an edited enhanced prompt is kept as the user wrote it."""
    ctx.check_cancelled()
    analysis = analyze_prompt(inputs.prompt, inputs.negative_prompt, inputs.enhanced_override)
    return AnalyzeResult(analysis, AnalyzeRecord(enhanced_prompt=analysis.enhanced_prompt))

"""Prompt understanding and the storyboard plan (layer 1: pure text, no model).

``analyze_prompt`` reads a prompt into subject, setting, action, style, lighting and camera;
``plan_shot`` turns it into a storyboard: one prompt per keyframe and one motion prompt per segment.
``llm_schema`` holds what an LLM planner must return and the checks its answer must pass.
"""

from backend.prompting.analysis import PromptAnalysis, analyze_prompt
from backend.prompting.llm_schema import PlanRejected, parse_llm_plan, planner_messages
from backend.prompting.storyboard import KeyframePlan, ShotPlan, keyframe_prompt, keyframe_times, plan_shot

__all__ = [
    "KeyframePlan", "PlanRejected", "PromptAnalysis", "ShotPlan", "analyze_prompt", "keyframe_prompt",
    "keyframe_times", "parse_llm_plan", "plan_shot", "planner_messages",
]

"""What an LLM planner is asked for, and the checks its answer must pass before it becomes a storyboard.

Pure text (no model here): the question as chat messages, the JSON schema of the answer, and
``parse_llm_plan``, which turns a reply into a ``ShotPlan`` or raises ``PlanRejected`` with the reason
as the start of one sentence ("the LLM's plan was not valid JSON"). The caller then falls back to the
rule-based planner and says why.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

from backend.prompting.analysis import BASE_NEGATIVE, PromptAnalysis
from backend.prompting.negations import find_negations, mentions
from backend.prompting.storyboard import KeyframePlan, ShotPlan, check_shape
from backend.prompting.vocabulary import CAMERA

LABEL_FIELDS = ("subject", "setting", "action", "style", "lighting", "camera")
PROMPT_FIELDS = ("enhanced_prompt", "negative_prompt")
MAX_LABEL_CHARS = 120
MAX_PROMPT_CHARS = 600
MAX_REPLY_CHARS = 20_000
TIME_TOLERANCE_S = 0.05  # "3.99" for a 4 s video is a rounding, not a wrong answer

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [*LABEL_FIELDS, *PROMPT_FIELDS, "keyframes", "segment_prompts"],
    "properties": {
        **{name: {"type": "string", "maxLength": MAX_LABEL_CHARS} for name in LABEL_FIELDS},
        "camera": {"type": "string", "enum": list(CAMERA)},
        **{name: {"type": "string", "maxLength": MAX_PROMPT_CHARS} for name in PROMPT_FIELDS},
        "keyframes": {"type": "array", "items": {
            "type": "object", "required": ["time", "prompt"],
            "properties": {"time": {"type": "number"}, "prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS}},
        }},
        "segment_prompts": {"type": "array", "items": {"type": "string", "maxLength": MAX_PROMPT_CHARS}},
    },
}

_SYSTEM = (
    "You plan storyboards for a text-to-video studio. Read the user's video prompt and answer with one JSON "
    "object and nothing else, matching this JSON schema: {schema}\n"
    "Rules: 'keyframes' has exactly {count} entries; their times are seconds, increasing, the first 0 and the "
    "last {duration:g}. Each keyframe prompt is an image prompt under 60 words showing the subject at that "
    "moment of the action (beginning, middle, end), with the same subject, place and style words in every "
    "keyframe and the most distinctive words first. 'segment_prompts' has exactly {segments} entries, each the "
    "motion between two neighbouring keyframes. Whatever the prompt negates (\"not at night\", \"without "
    "people\", \"no text\") goes into 'negative_prompt' and into no other field."
)


class PlanRejected(ValueError):
    """An LLM's answer that failed a check; ``reason`` is the start of a sentence saying which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fallback_sentence(reason: str) -> str:
    return f"{reason}; the rule-based planner wrote this storyboard"


def planner_messages(prompt: str, *, keyframes: int, duration: float, negative_prompt: str = "") -> list[dict]:
    """The chat messages that ask an instruct model for a storyboard (transformers' chat format)."""
    system = _SYSTEM.format(schema=json.dumps(PLAN_SCHEMA, separators=(",", ":")), count=keyframes,
                            duration=duration, segments=max(1, keyframes - 1))
    user = f"Prompt: {' '.join(prompt.split())}\nKeyframes: {keyframes}\nDuration: {duration:g} seconds"
    if negative_prompt.strip():
        user += f"\nAlso avoid: {negative_prompt.strip()}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_llm_plan(reply: str, *, prompt: str, keyframes: int, duration: float, planner: str,
                   negative_prompt: str = "", enhanced_override: str | None = None) -> ShotPlan:
    """The storyboard in ``reply``, checked; ``PlanRejected`` says what is wrong with it."""
    check_shape(keyframes, duration)
    document = _json_object(reply)
    labels = {name: _text(document, name, MAX_LABEL_CHARS) for name in LABEL_FIELDS}
    enhanced = _text(document, "enhanced_prompt", MAX_PROMPT_CHARS)
    negative = _text(document, "negative_prompt", MAX_PROMPT_CHARS, allow_empty=True)
    frames = _keyframes(document, keyframes, float(duration))
    segments = _segments(document, max(1, keyframes - 1))
    positives = [*labels.values(), enhanced, *(f.prompt for f in frames), *segments]
    negated = find_negations(" ".join(prompt.split())).terms
    for term in negated:
        if any(mentions(text, term) for text in positives):
            raise PlanRejected(f"the LLM's plan put '{term}', which the prompt negates, into a positive prompt")
    override = " ".join(enhanced_override.split()) if enhanced_override and enhanced_override.strip() else None
    if override:
        frames[0] = KeyframePlan(frames[0].time, override)
    analysis = PromptAnalysis(
        " ".join(prompt.split()), labels["subject"], labels["setting"], labels["action"], labels["style"],
        labels["lighting"], override or enhanced, _merge_negatives(negative_prompt, negated, negative),
        {"planner": planner} | ({"enhanced_prompt": "written by the user"} if override else {}), labels["camera"])
    return ShotPlan(analysis, tuple(frames), tuple(segments), planner)


def _json_object(reply: str) -> dict:
    if len(reply) > MAX_REPLY_CHARS:
        raise PlanRejected("the LLM's plan was too long")
    start, end = reply.find("{"), reply.rfind("}")  # models like to wrap JSON in ``` fences or a sentence
    try:
        document = json.loads(reply[start:end + 1]) if 0 <= start < end else json.loads(reply)
    except ValueError:
        raise PlanRejected("the LLM's plan was not valid JSON") from None
    if not isinstance(document, dict):
        raise PlanRejected("the LLM's plan was not a JSON object")
    return document


def _checked(value: Any, where: str, limit: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise PlanRejected(f"the LLM's plan gave {where} as {type(value).__name__} instead of text")
    text = " ".join(value.split())
    if not text and not allow_empty:
        raise PlanRejected(f"the LLM's plan left {where} empty")
    if len(text) > limit:
        raise PlanRejected(f"the LLM's plan made {where} longer than {limit} characters")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise PlanRejected(f"the LLM's plan put control characters in {where}")
    return text


def _text(document: dict, name: str, limit: int, *, allow_empty: bool = False) -> str:
    if name not in document:
        raise PlanRejected(f"the LLM's plan had no '{name}'")
    return _checked(document[name], f"'{name}'", limit, allow_empty=allow_empty)


def _keyframes(document: dict, count: int, duration: float) -> list[KeyframePlan]:
    items = document.get("keyframes")
    if not isinstance(items, list):
        raise PlanRejected("the LLM's plan had no list of keyframes")
    if len(items) != count:
        raise PlanRejected(f"the LLM's plan had {_count(len(items), 'keyframe')} instead of {count}")
    frames: list[KeyframePlan] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise PlanRejected(f"the LLM's keyframe {i + 1} was not an object with a time and a prompt")
        time = item.get("time")
        if isinstance(time, bool) or not isinstance(time, (int, float)) or not math.isfinite(time):
            raise PlanRejected(f"the LLM's keyframe {i + 1} had no time in seconds")
        if not -TIME_TOLERANCE_S <= time <= duration + TIME_TOLERANCE_S:
            raise PlanRejected(f"the LLM's keyframe {i + 1} was at {time:g} s, outside the {duration:g} s video")
        if frames and time <= frames[-1].time:
            raise PlanRejected("the LLM's keyframe times did not increase")
        frames.append(KeyframePlan(round(float(time), 3), _checked(item.get("prompt"), f"keyframe {i + 1}'s prompt",
                                                                   MAX_PROMPT_CHARS)))
    ends = (0.0, duration) if count > 1 else (0.0, 0.0)
    if abs(frames[0].time - ends[0]) > TIME_TOLERANCE_S or abs(frames[-1].time - ends[1]) > TIME_TOLERANCE_S:
        raise PlanRejected(f"the LLM's keyframe times did not run from 0 to {ends[1]:g} s")
    frames[0] = KeyframePlan(ends[0], frames[0].prompt)
    frames[-1] = KeyframePlan(ends[1], frames[-1].prompt)  # exact ends: the video starts and stops on them
    return frames


def _segments(document: dict, count: int) -> list[str]:
    items = document.get("segment_prompts")
    if not isinstance(items, list):
        raise PlanRejected("the LLM's plan had no list of segment prompts")
    if len(items) != count:
        raise PlanRejected(f"the LLM's plan had {_count(len(items), 'segment prompt')} instead of {count}")
    return [_checked(item, f"segment {i + 1}'s prompt", MAX_PROMPT_CHARS) for i, item in enumerate(items)]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _merge_negatives(user: str, negated: tuple[str, ...], llm: str) -> str:
    """The user's negative prompt, the negated words, the LLM's, then the defaults; each phrase once."""
    parts: list[str] = []
    for text in (user, ", ".join(negated), llm, BASE_NEGATIVE):
        for part in re.split(r"\s*,\s*", text.strip()):
            if part and part.lower() not in (p.lower() for p in parts):
                parts.append(part)
    return ", ".join(parts)

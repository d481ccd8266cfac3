"""The storyboard plan: one prompt per keyframe, evenly spaced in time, telling how the action progresses,
and one motion prompt per segment between keyframes.

Each keyframe prompt leads with what makes it distinct (the subject at that moment of the action),
then the place and the rest of the user's words, then the style: the same subject, place and style
words in every keyframe keep them consistent, and the order keeps the important words inside CLIP's
77 tokens (the tail is what gets dropped when a prompt is long).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from backend.errors import SpecError
from backend.prompting.analysis import PromptAnalysis, analysis_of, style_parts
from backend.prompting.negations import drop_negated
from backend.prompting.parse import ParsedPrompt, parse_prompt
from backend.prompting.progress import action_at, framing_at, motion_between

CLIP_TOKENS = 75  # CLIP reads 77 tokens, two of them its start and end markers
MAX_SEGMENT_WORDS = 60  # motion text goes to T5-style encoders, which read more, but not without end
# A user asks for at most 16 keyframes (the spec), but a long first-last video needs one per pipeline call
# (120 s of Wan at 16 fps: 25), so the planner takes what the motion engine asks for.
MAX_KEYFRAMES = 64
RULES = "rules"
_PIECE = re.compile(r"[a-z0-9]+|[^a-z0-9\s]")


@dataclass(frozen=True)
class KeyframePlan:
    time: float  # seconds into the video
    prompt: str  # the image model's prompt for this keyframe


@dataclass(frozen=True)
class ShotPlan:
    analysis: PromptAnalysis
    keyframes: tuple[KeyframePlan, ...]  # first at 0.0, last at the duration (one keyframe: 0.0)
    segment_prompts: tuple[str, ...]  # motion text between keyframe i and i+1: max(1, keyframes - 1) entries
    planner: str  # "rules" or "llm:<model key>"
    fallback: str | None = None  # why an LLM plan was not used (the rules wrote this one), one sentence

    def to_dict(self) -> dict:
        return {"analysis": self.analysis.to_dict(), "keyframes": [asdict(k) for k in self.keyframes],
                "segment_prompts": list(self.segment_prompts), "planner": self.planner, "fallback": self.fallback}


def keyframe_times(count: int, duration: float) -> tuple[float, ...]:
    """Evenly spaced times from 0 to ``duration``; a single keyframe is at 0."""
    if count <= 1:
        return (0.0,)
    return tuple(round(duration * i / (count - 1), 3) for i in range(count))


def check_shape(keyframes: int, duration: float) -> None:
    if isinstance(keyframes, bool) or not isinstance(keyframes, int) or not 1 <= keyframes <= MAX_KEYFRAMES:
        raise SpecError("keyframes", f"The number of keyframes must be a whole number from 1 to {MAX_KEYFRAMES}.")
    if not isinstance(duration, (int, float)) or not duration > 0:
        raise SpecError("duration", "The duration must be more than 0 seconds.")


def plan_shot(prompt: str, *, keyframes: int, duration: float, negative_prompt: str = "",
              enhanced_override: str | None = None) -> ShotPlan:
    """The rule-based storyboard for ``prompt``: ``keyframes`` prompts over ``duration`` seconds."""
    check_shape(keyframes, duration)
    parsed = parse_prompt(prompt)
    override = " ".join(enhanced_override.split()) if enhanced_override and enhanced_override.strip() else None
    analysis = analysis_of(parsed, negative_prompt, override)
    times = keyframe_times(keyframes, float(duration))
    rest = _shared_words(parsed, analysis, override)
    frames = []
    for i, (time, phase) in enumerate(zip(times, _phases(keyframes))):
        if override and i == 0:
            frames.append(KeyframePlan(time, override))  # the user's own words, exactly
            continue
        action = action_at(parsed.subject, parsed.verb, phase)
        frames.append(KeyframePlan(time, fit_clip([action, framing_at(analysis.camera, phase)] + rest)))
    ends = _phases(keyframes) if keyframes > 1 else [0.0, 1.0]
    motion = []
    for start, end in zip(ends, ends[1:]):
        words = ", ".join([motion_between(parsed.subject, parsed.verb, analysis.camera, start, end)] + rest).split()
        motion.append(" ".join(words[:MAX_SEGMENT_WORDS]).rstrip(","))
    return ShotPlan(analysis, tuple(frames), tuple(motion), RULES)


def keyframe_prompt(analysis: PromptAnalysis, index: int, count: int) -> str:
    """The prompt for keyframe ``index`` of ``count`` (kept for callers that predate ``plan_shot``)."""
    override = analysis.enhanced_prompt if analysis.evidence.get("enhanced_prompt") == "written by the user" else None
    plan = plan_shot(analysis.prompt, keyframes=max(1, count), duration=float(max(1, count - 1)),
                     enhanced_override=override)
    return plan.keyframes[index].prompt


def _phases(count: int) -> list[float]:
    return [0.0] if count <= 1 else [i / (count - 1) for i in range(count)]


def _shared_words(parsed: ParsedPrompt, analysis: PromptAnalysis, override: str | None) -> list[str]:
    """What every keyframe and segment repeats after its own words: the place, the rest, the style."""
    if override:
        rest = [p.strip() for p in override.split(",")]
    else:
        core = parsed.clean.rstrip(" .,;")
        rest = list(parsed.context) + style_parts(core, analysis.style, analysis.lighting, parsed.negations.terms)
    return drop_negated([p for p in rest if p], parsed.negations.terms)


def clip_tokens(text: str) -> int:
    """A generous estimate of CLIP's token count: long words split into pieces, punctuation is a token."""
    return sum(1 + len(piece) // 7 if piece[0].isalnum() else 1 for piece in _PIECE.findall(text.lower()))


def fit_clip(parts: list[str], budget: int = CLIP_TOKENS) -> str:
    """Join ``parts`` in order of importance, leaving out those that would overflow CLIP's window."""
    kept: list[str] = []
    for part in (p for p in parts if p):
        if clip_tokens(", ".join(kept + [part])) <= budget:
            kept.append(part)
        elif not kept:  # the first part alone is too long: keep as many of its words as fit
            words: list[str] = []
            for word in part.split():
                if clip_tokens(" ".join(words + [word])) > budget:
                    break
                words.append(word)
            kept.append(" ".join(words))
    return ", ".join(kept)

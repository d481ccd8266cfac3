"""Prompt analysis: subject, setting, action, style, lighting and camera, plus an enhanced prompt.

Rule-based on purpose: every field can be explained by the words that produced it
(``PromptAnalysis.evidence``), it runs instantly in the UI while the user types, and it needs no
model. Enhancement is style-aware (a template per style, not one fixed suffix) and never says what
the prompt negates: "not at night" goes to the negative prompt only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from backend.prompting.negations import drop_negated
from backend.prompting.parse import ParsedPrompt, parse_prompt
from backend.prompting.vocabulary import LIGHT_PHRASES

STYLE_TEMPLATES: dict[str, str] = {
    "cinematic": "{core}, cinematic shot, anamorphic lens, shallow depth of field, film grain, {light}, rich colour",
    "anime": "{core}, anime style, clean line art, vibrant cel shading, {light}, detailed background",
    "animation": "{core}, 3D animated film style, soft global illumination, {light}, expressive, polished render",
    "painting": "{core}, painterly, visible brush strokes, {light}, harmonious palette, fine art",
    "vintage film": "{core}, vintage 35mm film look, warm faded colours, film grain, {light}",
    "noir": "{core}, film noir, black and white, high contrast, dramatic shadows, {light}",
    "fantasy": "{core}, epic fantasy concept art, {light}, volumetric light, intricate detail",
    "sci-fi": "{core}, science fiction, futuristic design, {light}, volumetric haze, detailed",
    "documentary": "{core}, documentary footage, natural colours, steady shot, {light}, sharp focus",
    "photoreal": "{core}, photorealistic, high detail, natural motion, {light}, sharp focus, 4k",
}
BASE_NEGATIVE = (
    "blurry, low quality, lowres, jpeg artifacts, watermark, text, logo, deformed, distorted, "
    "disfigured, extra limbs, bad anatomy, flicker, jitter, duplicate frames"
)
STYLE_NEGATIVE: dict[str, str] = {
    "photoreal": "cartoon, illustration, painting, cgi",
    "documentary": "cartoon, illustration, painting, cgi, staged",
    "cinematic": "amateur, flat lighting, overexposed",
    "anime": "photorealistic, 3d render, realistic skin",
    "noir": "colour, saturated",
}
DEFAULT_STYLE = "photoreal"
DEFAULT_LIGHTING = "natural"


@dataclass(frozen=True)
class PromptAnalysis:
    prompt: str
    subject: str
    setting: str
    action: str
    style: str
    lighting: str
    enhanced_prompt: str
    negative_prompt: str
    evidence: dict[str, str] = field(default_factory=dict)  # field -> the words that decided it
    camera: str = "static"  # last, with a default: records written before it existed still load

    def to_dict(self) -> dict:
        return asdict(self)


def analyze_prompt(prompt: str, negative_prompt: str = "", enhanced_override: str | None = None) -> PromptAnalysis:
    """Analyse ``prompt`` and build the enhanced and negative prompts (or keep the user's own enhanced one)."""
    return analysis_of(parse_prompt(prompt), negative_prompt, enhanced_override)


def analysis_of(parsed: ParsedPrompt, negative_prompt: str = "", enhanced_override: str | None = None
                ) -> PromptAnalysis:
    style = parsed.style or DEFAULT_STYLE
    lighting = parsed.lighting or DEFAULT_LIGHTING
    evidence = dict(parsed.evidence)
    if enhanced_override and enhanced_override.strip():
        enhanced = " ".join(enhanced_override.split())
        evidence["enhanced_prompt"] = "written by the user"
    else:
        core = parsed.clean.rstrip(" .,;")
        enhanced = ", ".join(([core] if core else []) + style_parts(core, style, lighting, parsed.negations.terms))
    negative = negative_prompt_for(style, negative_prompt, parsed.negations.terms)
    return PromptAnalysis(parsed.text, parsed.subject, parsed.setting, parsed.action, style, lighting, enhanced,
                          negative, evidence, camera_of(parsed))


def camera_of(parsed: ParsedPrompt) -> str:
    """The camera the prompt asks for; without one, a still scene gets a slow push in to give it motion."""
    if parsed.camera:
        return parsed.camera
    return "static" if parsed.verb else "slow push in"


def style_parts(core: str, style: str, lighting: str, negated: tuple[str, ...] = ()) -> list[str]:
    """The style template's phrases that the prompt does not already say and that name nothing negated."""
    template = STYLE_TEMPLATES.get(style, STYLE_TEMPLATES[DEFAULT_STYLE])
    light = LIGHT_PHRASES.get(lighting, LIGHT_PHRASES[DEFAULT_LIGHTING])
    parts: list[str] = []
    for part in (p.strip() for p in template.format(core="", light=light).split(",")):
        if part and part.lower() not in core.lower() and part not in parts:
            parts.append(part)  # don't repeat what the user already said ("cinematic" twice)
    return drop_negated(parts, negated)


def negative_prompt_for(style: str, user_negative: str, negated: tuple[str, ...] = ()) -> str:
    """The user's negative prompt first, then what the prompt negated, then the defaults for the style."""
    extra = STYLE_NEGATIVE.get(style)
    defaults = BASE_NEGATIVE + (f", {extra}" if extra else "")
    parts = [user_negative.strip()] if user_negative.strip() else []
    parts += [term for term in negated if term not in parts and term not in defaults.split(", ")]
    return ", ".join(parts + [defaults])

"""Prompt analysis: subject, setting, action, style and lighting, plus an enhanced prompt.

Rule-based on purpose: every field can be explained by the words that produced it
(``PromptAnalysis.evidence``), it runs instantly in the UI while the user types, and it needs no
model. Enhancement is style-aware: a template per style, not one fixed suffix.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

# Keyword → canonical label. Order matters: the first match in each table wins.
STYLES: dict[str, tuple[str, ...]] = {
    "anime": ("anime", "manga", "studio ghibli", "cel shaded", "cel-shaded"),
    "animation": ("pixar", "3d animation", "cartoon", "claymation", "animated"),
    "painting": ("oil painting", "watercolor", "watercolour", "painting", "impressionist", "painted"),
    "vintage film": ("vintage", "retro", "1970s", "1980s", "super 8", "film grain", "8mm"),
    "noir": ("noir", "black and white", "black-and-white", "monochrome"),
    "fantasy": ("fantasy", "magical", "dragon", "enchanted", "fairy"),
    "sci-fi": ("sci-fi", "science fiction", "cyberpunk", "futuristic", "spaceship", "neon city"),
    "documentary": ("documentary", "wildlife", "nature footage", "national geographic"),
    "cinematic": ("cinematic", "film still", "movie", "anamorphic", "epic"),
}
LIGHTING: dict[str, tuple[str, ...]] = {
    "golden hour": ("golden hour", "sunset", "sunrise", "dusk", "dawn"),
    "night": ("night", "moonlight", "moonlit", "midnight", "starry"),
    "neon": ("neon",),
    "overcast": ("overcast", "cloudy", "foggy", "fog", "mist", "rainy", "rain"),
    "studio lighting": ("studio lighting", "softbox", "studio"),
    "daylight": ("daylight", "midday", "noon", "sunny", "bright day"),
    "candlelight": ("candle", "candlelight", "firelight", "campfire"),
    "backlit": ("backlit", "silhouette", "rim light"),
}
SETTINGS: tuple[str, ...] = (
    "beach", "ocean", "sea", "forest", "jungle", "desert", "mountain", "mountains", "city", "street", "alley",
    "river", "lake", "waterfall", "field", "meadow", "garden", "kitchen", "room", "office", "space", "sky",
    "underwater", "snow", "village", "castle", "highway", "road", "park", "stage", "cafe", "harbor", "island",
)
ACTIONS: tuple[str, ...] = (
    "crashing", "running", "walking", "flying", "dancing", "swimming", "falling", "flowing", "spinning",
    "jumping", "driving", "floating", "burning", "rising", "blowing", "waving", "drifting", "exploding",
    "rolling", "pouring", "growing", "melting", "sailing", "racing", "turning", "moving", "playing", "singing",
)
_ACTION_SUFFIX = re.compile(r"\b([a-z]{3,}ing)\b")
_FRAMING = re.compile(r"^(?:an? |the )?(?:[\w-]+ ){0,2}(?:shot|video|footage|clip|scene|image|photo|view|timelapse) of ")
_STOP = {"a", "an", "the", "of", "on", "in", "at", "with", "and", "by", "over", "under", "into", "through", "from"}
_NOT_ACTIONS = {"morning", "evening", "lighting", "building", "ceiling", "painting", "thing", "king", "ring",
                "spring", "string", "wing", "wedding", "pudding", "something", "nothing", "everything"}

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
LIGHT_PHRASES: dict[str, str] = {
    "golden hour": "warm golden hour light",
    "night": "moody night lighting",
    "neon": "glowing neon light",
    "overcast": "soft diffused light",
    "studio lighting": "controlled studio lighting",
    "daylight": "bright natural daylight",
    "candlelight": "flickering warm candlelight",
    "backlit": "strong backlight with rim light",
    "natural": "natural light",
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

    def to_dict(self) -> dict:
        return asdict(self)


def analyze_prompt(prompt: str, negative_prompt: str = "", enhanced_override: str | None = None) -> PromptAnalysis:
    """Analyse ``prompt`` and build the enhanced and negative prompts (or keep the user's own enhanced one)."""
    text = " ".join(prompt.split())
    lower = text.lower()
    evidence: dict[str, str] = {}
    style = _first_label(lower, STYLES, evidence, "style") or "photoreal"
    lighting = _first_label(lower, LIGHTING, evidence, "lighting") or "natural"
    setting = _find_setting(lower, evidence)
    action = _find_action(lower, evidence)
    subject = _find_subject(lower, action, setting, evidence)
    enhanced = " ".join(enhanced_override.split()) if enhanced_override else _enhance(text, style, lighting)
    if enhanced_override:
        evidence["enhanced_prompt"] = "written by the user"
    negative = _negative(style, negative_prompt)
    return PromptAnalysis(text, subject, setting, action, style, lighting, enhanced, negative, evidence)


def keyframe_prompt(analysis: PromptAnalysis, index: int, count: int) -> str:
    """The prompt for keyframe ``index`` of ``count``: the same scene, moving forward in time."""
    if count <= 1 or index == 0:
        return analysis.enhanced_prompt
    phase = index / (count - 1)
    if phase >= 0.99:
        moment = "final moment of the scene"
    elif phase >= 0.5:
        moment = "later in the same scene"
    else:
        moment = "a moment later in the same scene"
    action = f", {analysis.action} continues" if analysis.action != "still" else ""
    timing = f"{moment}{action}"
    core = analysis.prompt.rstrip(" .,;")
    # CLIP reads 77 tokens: say when we are right after the user's words, before the style phrases.
    if analysis.enhanced_prompt.startswith(core + ", "):
        style = analysis.enhanced_prompt[len(core) + 2:]
        return f"{core}, {timing}, {style}, consistent subject and colours"
    return f"{analysis.enhanced_prompt}, {timing}, consistent subject and colours"


def _first_label(lower: str, table: dict[str, tuple[str, ...]], evidence: dict[str, str], name: str) -> str | None:
    for label, words in table.items():
        for word in words:
            if re.search(rf"\b{re.escape(word)}\b", lower):
                evidence[name] = word
                return label
    return None


def _find_setting(lower: str, evidence: dict[str, str]) -> str:
    for word in SETTINGS:
        match = re.search(rf"\b(?:on|in|at|over|under|across|through|by|near) (?:an? |the )?((?:\w+ )?{word})\b", lower)
        if match:
            evidence["setting"] = match.group(0)
            return match.group(1)
    for word in SETTINGS:
        if re.search(rf"\b{word}\b", lower):
            evidence["setting"] = word
            return word
    return "unspecified"


def _find_action(lower: str, evidence: dict[str, str]) -> str:
    for word in ACTIONS:
        if re.search(rf"\b{word}\b", lower):
            evidence["action"] = word
            return word
    for match in _ACTION_SUFFIX.finditer(lower):
        if match.group(1) not in _NOT_ACTIONS:
            evidence["action"] = match.group(1)
            return match.group(1)
    return "still"


def _find_subject(lower: str, action: str, setting: str, evidence: dict[str, str]) -> str:
    """The words before the action (or before the setting's preposition): "ocean waves" in "ocean waves crashing"."""
    # "a cinematic shot of X" is about X.
    lower = _FRAMING.sub("", lower, count=1)
    cut = len(lower)
    if action != "still" and action in lower:
        cut = min(cut, lower.find(action))
    preposition = re.search(r"\b(on|in|at|over|under|across|through|by|near|during)\b", lower)
    if preposition:
        cut = min(cut, preposition.start())
    words = [w for w in re.findall(r"[\w'-]+", lower[:cut]) if w not in _STOP]
    if not words:
        words = [w for w in re.findall(r"[\w'-]+", lower) if w not in _STOP][:3]
    subject = " ".join(words[-4:]) or "scene"
    evidence["subject"] = subject
    return subject


def _enhance(text: str, style: str, lighting: str) -> str:
    template = STYLE_TEMPLATES.get(style, STYLE_TEMPLATES["photoreal"])
    light = LIGHT_PHRASES.get(lighting, LIGHT_PHRASES["natural"])
    core = text.rstrip(" .,;")
    enhanced = template.format(core=core, light=light)
    # Don't repeat what the user already said (e.g. "cinematic" twice).
    parts = [core]
    for part in (p.strip() for p in enhanced[len(core):].split(",")):
        if part and part.lower() not in core.lower() and part not in parts:
            parts.append(part)
    return ", ".join(parts)


def _negative(style: str, user_negative: str) -> str:
    extra = STYLE_NEGATIVE.get(style)
    negative = BASE_NEGATIVE + (f", {extra}" if extra else "")
    return f"{user_negative.strip()}, {negative}" if user_negative.strip() else negative

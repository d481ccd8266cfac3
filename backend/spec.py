"""JobSpec: everything a user asks of one video, validated before it reaches the queue.

The UI, the CLI and manifests all build a JobSpec; the orchestrator refuses one that does not
validate, with a message a user can act on (``SpecError``). The spec is stored as JSON, so every
field is a plain value.
"""

from __future__ import annotations

import math
import secrets
import unicodedata
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from backend.errors import SpecError

MODES = ("t2v", "i2v", "extend")
ENGINES = ("auto", "ltx", "wan", "skyreels", "svd", "cogvideox")  # auto: the best that fits
MODEL_SETS = ("default", "tiny")
PRESET_NAMES = ("quick", "standard", "high")
GRADES = ("none", "neutral", "cinematic", "vivid", "warm", "cool", "noir")
INTERPOLATIONS = ("flow", "rife", "minterpolate", "blend", "none")  # flow: optical flow, no download
UPSCALERS = ("lanczos", "model")  # model: a Real-ESRGAN-family upscaler (spandrel), then lanczos to size
COLOUR_MATCHING = ("auto", "off")  # auto: later segments matched to the first (multi-segment jobs)
MAX_DEFLICKER = 129  # ffmpeg's deflicker window (frames)
ASPECT_POLICIES = ("fit", "fill")
STABILIZERS = ("off", "vidstab", "deshake")
ENCODERS = ("libx264", "h264_nvenc", "auto")
PLANNERS = ("rules", "llm")  # rules: instant, no model; llm: a local instruct model (falls back to rules)
# How keyframes after the first stay the same subject and place: auto = IP-Adapter when downloaded, else
# img2img from the previous keyframe; independent = each keyframe from text with the shared seed and style.
CONSISTENCY = ("auto", "ip-adapter", "img2img", "independent")
LORA_TARGETS = ("keyframes", "motion")
MAX_LORAS = 4

LEGACY_FINISH_KEY = "post"  # what ``finish`` was called in specs written before schema 2
MAX_PROMPT_CHARS = 2000
MAX_DURATION_S = 120.0
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Preset:
    """What a quality preset means for the real models."""

    keyframe_steps: int
    motion_steps: int
    keyframe_guidance: float
    seconds_per_keyframe: float


PRESETS: dict[str, Preset] = {
    "quick": Preset(keyframe_steps=20, motion_steps=15, keyframe_guidance=6.0, seconds_per_keyframe=4.0),
    "standard": Preset(keyframe_steps=30, motion_steps=25, keyframe_guidance=7.0, seconds_per_keyframe=2.5),
    "high": Preset(keyframe_steps=40, motion_steps=30, keyframe_guidance=7.5, seconds_per_keyframe=2.0),
}


@dataclass(frozen=True)
class FinishOptions:
    """Finishing: how the assembled frames become the delivered file."""

    interpolation: str = "flow"  # how frame rate is converted: flow | rife | minterpolate | blend | none
    aspect: str = "fit"  # fit = pad to the output size, fill = crop to it; never stretch
    grade: str = "neutral"
    lut: str | None = None  # path of a validated .cube file (stored under uploads/)
    sharpen: float = 0.5  # unsharp amount; 0 switches it off
    stabilize: str = "off"
    crf: int = 18
    encoder: str = "libx264"
    upscale: str = "lanczos"  # lanczos | model (AI upscaler before the lanczos to the exact size)
    colour_match: str = "auto"  # auto | off: segments' colour matched to the first segment's
    deflicker: int = 0  # frames ffmpeg's deflicker averages brightness over (0 = off; 2..129)

    def validate(self) -> None:
        _one_of("finish.interpolation", self.interpolation, INTERPOLATIONS)
        _one_of("finish.aspect", self.aspect, ASPECT_POLICIES)
        _one_of("finish.grade", self.grade, GRADES)
        _one_of("finish.stabilize", self.stabilize, STABILIZERS)
        _one_of("finish.encoder", self.encoder, ENCODERS)
        _in_range("finish.sharpen", self.sharpen, 0.0, 3.0)
        _in_range("finish.crf", self.crf, 0, 51, integer=True)
        _one_of("finish.upscale", self.upscale, UPSCALERS)
        _one_of("finish.colour_match", self.colour_match, COLOUR_MATCHING)
        _in_range("finish.deflicker", self.deflicker, 0, MAX_DEFLICKER, integer=True)
        if self.deflicker == 1:
            raise SpecError("finish.deflicker", "'finish.deflicker' is 0 (off) or a window of 2 to 129 frames.")


@dataclass(frozen=True)
class LoraChoice:
    """A local LoRA file (by name, inside ``models/loras/``) applied to the keyframe or the motion model."""

    file: str  # a file name, never a path: resolved inside the LoRA folder
    weight: float = 0.8
    target: str = "keyframes"

    def validate(self, where: str) -> None:
        if not isinstance(self.file, str) or not self.file.endswith(".safetensors") or self.file != _base_name(self.file):
            raise SpecError(f"{where}.file", f"'{self.file}' is not a LoRA file name (a .safetensors file in "
                                             "models/loras/, without folders).")
        _in_range(f"{where}.weight", self.weight, -2.0, 2.0)
        _one_of(f"{where}.target", self.target, LORA_TARGETS)


def _base_name(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1].lstrip(".") if name else name


@dataclass(frozen=True)
class JobSpec:
    prompt: str
    mode: str = "t2v"
    negative_prompt: str = ""
    enhanced_prompt: str | None = None  # the user's own edit of the enhanced prompt, used verbatim
    preset: str = "standard"
    duration: float = 4.0  # seconds of new video (for ``extend``: of the continuation)
    fps: int = 24
    width: int = 1920
    height: int = 1080
    seed: int | None = None  # random when unset; always recorded once submitted
    guidance: float | None = None
    steps: int | None = None  # overrides the preset's keyframe and motion steps
    keyframes: int | None = None  # number of storyboard keyframes; derived from duration when unset
    engine: str = "auto"  # motion engine; "auto" = the most storyboard-faithful one that fits
    motion_strength: float = 0.5  # 0 = nearly still, 1 = lots of motion
    image: str | None = None  # i2v: path of the (already validated) uploaded image
    video: str | None = None  # extend: path of the (already validated) uploaded video
    model_set: str = "default"  # "tiny" = random-weight test models, output is noise
    finish: FinishOptions = field(default_factory=FinishOptions)
    review: bool = False  # stop after the keyframes (awaiting_review) until the user says Animate
    planner: str = "rules"  # who writes the storyboard's prompts: rules | llm
    consistency: str = "auto"  # how later keyframes keep the subject: auto | ip-adapter | img2img | independent
    loras: tuple[LoraChoice, ...] = ()

    # --- derived values -------------------------------------------------------------
    @property
    def total_frames(self) -> int:
        return max(1, round(self.duration * self.fps))

    @property
    def preset_values(self) -> Preset:
        return PRESETS[self.preset]

    def keyframe_count(self) -> int:
        if self.keyframes is not None:
            return self.keyframes
        per = self.preset_values.seconds_per_keyframe
        return int(min(8, max(2, round(self.duration / per) + 1)))

    def with_seed(self) -> "JobSpec":
        """The same spec with a concrete seed (drawn now if the user left it random)."""
        return self if self.seed is not None else replace(self, seed=secrets.randbelow(MAX_SEED + 1))

    # --- validation -----------------------------------------------------------------
    def validate(self) -> "JobSpec":
        """Raise SpecError for the first problem found; return a normalised copy otherwise."""
        _one_of("mode", self.mode, MODES)
        _one_of("preset", self.preset, PRESET_NAMES)
        _one_of("engine", self.engine, ENGINES)
        _one_of("model_set", self.model_set, MODEL_SETS)
        prompt = clean_text("prompt", self.prompt, required=True)
        negative = clean_text("negative_prompt", self.negative_prompt, required=False)
        enhanced = (clean_text("enhanced_prompt", self.enhanced_prompt, required=False) or None
                    if self.enhanced_prompt is not None else None)
        _in_range("duration", self.duration, 0.5, MAX_DURATION_S, unit="seconds")
        _in_range("fps", self.fps, 4, 60, integer=True)
        _in_range("width", self.width, 128, 3840, integer=True)
        _in_range("height", self.height, 128, 2160, integer=True)
        if self.width % 2 or self.height % 2:
            raise SpecError("width", "Width and height must be even numbers (H.264 needs it).")
        if self.seed is not None:
            _in_range("seed", self.seed, 0, MAX_SEED, integer=True)
        if self.guidance is not None:
            _in_range("guidance", self.guidance, 0.0, 30.0)
        if self.steps is not None:
            _in_range("steps", self.steps, 1, 150, integer=True)
        if self.keyframes is not None:
            _in_range("keyframes", self.keyframes, 1, 16, integer=True)
        _in_range("motion_strength", self.motion_strength, 0.0, 1.0)
        if self.mode == "i2v" and not self.image:
            raise SpecError("image", "Image-to-video needs an image: upload one or pass --image.")
        if self.mode == "extend" and not self.video:
            raise SpecError("video", "Extending a video needs a video: upload one or pass --video.")
        if not isinstance(self.finish, FinishOptions):
            raise SpecError("finish", "Finishing options are malformed.")
        self.finish.validate()
        if not isinstance(self.review, bool):
            raise SpecError("review", "'review' must be true or false.")
        _one_of("planner", self.planner, PLANNERS)
        _one_of("consistency", self.consistency, CONSISTENCY)
        if len(self.loras) > MAX_LORAS:
            raise SpecError("loras", f"At most {MAX_LORAS} LoRAs can be applied to one job; got {len(self.loras)}.")
        for i, lora in enumerate(self.loras):
            if not isinstance(lora, LoraChoice):
                raise SpecError(f"loras[{i}]", "A LoRA choice is malformed.")
            lora.validate(f"loras[{i}]")
        return replace(self, prompt=prompt, negative_prompt=negative, enhanced_prompt=enhanced)

    # --- (de)serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["loras"] = list(document["loras"])  # JSON's shape, so a round trip compares equal
        return document

    @classmethod
    def from_dict(cls, data: Any) -> "JobSpec":
        """Build from JSON-like data; unknown keys and wrong types are SpecErrors, not crashes."""
        if not isinstance(data, dict):
            raise SpecError("spec", "A job spec must be a JSON object.")
        data = upgrade_spec_dict(data)
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise SpecError(unknown[0], f"Unknown setting(s): {', '.join(map(str, unknown))}.")
        if "prompt" not in data:
            raise SpecError("prompt", "A prompt is required.")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "finish":
                values[name] = _finish_from_dict(value)
            elif name == "loras":
                values[name] = _loras_from_list(value)
            else:
                values[name] = _coerce(name, value, _DEFAULTS[name])
        return cls(**values)


def upgrade_spec_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A stored spec in today's shape: specs written before schema 2 called ``finish`` ``post``."""
    if LEGACY_FINISH_KEY not in data or "finish" in data:
        return data
    return {("finish" if key == LEGACY_FINISH_KEY else key): value for key, value in data.items()}


def _finish_from_dict(data: Any) -> FinishOptions:
    if data is None:
        return FinishOptions()
    if not isinstance(data, dict):
        raise SpecError("finish", "Finishing options must be a JSON object.")
    known = {f.name for f in fields(FinishOptions)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"finish.{unknown[0]}", f"Unknown finishing setting(s): {', '.join(unknown)}.")
    defaults = FinishOptions()
    return FinishOptions(**{k: _coerce(f"finish.{k}", v, getattr(defaults, k)) for k, v in data.items()})


def _loras_from_list(data: Any) -> tuple[LoraChoice, ...]:
    if data is None:
        return ()
    if not isinstance(data, (list, tuple)):
        raise SpecError("loras", "'loras' must be a list of {file, weight, target} objects.")
    choices = []
    known = {f.name for f in fields(LoraChoice)}
    for i, item in enumerate(data):
        if isinstance(item, LoraChoice):
            choices.append(item)
            continue
        if not isinstance(item, dict) or "file" not in item or set(item) - known:
            raise SpecError(f"loras[{i}]", f"'loras[{i}]' must be an object with 'file' and optional 'weight', "
                                           "'target'.")
        defaults = LoraChoice(file="")
        choices.append(LoraChoice(**{k: _coerce(f"loras[{i}].{k}", v, getattr(defaults, k)) for k, v in item.items()}))
    return tuple(choices)


# Default of each field, used to know what type a JSON value must have.
_DEFAULTS: dict[str, Any] = {
    "prompt": "", "mode": "t2v", "negative_prompt": "", "enhanced_prompt": "", "preset": "standard", "duration": 4.0,
    "fps": 24, "width": 1920, "height": 1080, "seed": 0, "guidance": 0.0, "steps": 0,
    "keyframes": 0, "engine": "auto", "motion_strength": 0.5, "image": "", "video": "",
    "model_set": "default", "review": False, "planner": "rules", "consistency": "auto",
}
_OPTIONAL = {"seed", "guidance", "steps", "keyframes", "image", "video", "lut", "enhanced_prompt"}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Accept a JSON value of the right kind (ints for floats are fine; bools are not numbers)."""
    short = name.split(".")[-1]
    if value is None and short in _OPTIONAL:
        return None
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise SpecError(name, f"'{name}' must be true or false.")
    if isinstance(default, str) or default is None:
        if isinstance(value, str):
            return value
        raise SpecError(name, f"'{name}' must be text.")
    if isinstance(value, bool):
        raise SpecError(name, f"'{name}' must be a number.")
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise SpecError(name, f"'{name}' must be a whole number.")
    if isinstance(default, float):
        if isinstance(value, (int, float)):
            return float(value)
        raise SpecError(name, f"'{name}' must be a number.")
    raise SpecError(name, f"'{name}' has an unsupported value.")  # pragma: no cover - defensive


def clean_text(name: str, text: Any, *, required: bool) -> str:
    """Normalise a prompt; refuse control characters and text that is not valid Unicode (never dropped silently)."""
    if not isinstance(text, str):
        raise SpecError(name, f"The {name.replace('_', ' ')} must be text.")
    try:
        text.encode("utf-8")  # a lone surrogate: a byte the terminal's encoding could not decode
    except UnicodeEncodeError as exc:
        raise SpecError(name, f"The {name.replace('_', ' ')} is not valid UTF-8 text (character {exc.start + 1} "
                              "could not be decoded); re-type it in a UTF-8 terminal or editor.") from None
    text = unicodedata.normalize("NFC", text).strip()
    if required and not text:
        raise SpecError(name, "Please describe the video: the prompt is empty.")
    if len(text) > MAX_PROMPT_CHARS:
        raise SpecError(
            name, f"The {name.replace('_', ' ')} is {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}."
        )
    bad = [c for c in text if unicodedata.category(c) == "Cc" and c not in "\n\t"]
    if bad:
        raise SpecError(name, f"The {name.replace('_', ' ')} contains control characters (e.g. {ord(bad[0]):#04x}).")
    return text


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(name, f"'{value}' is not a valid {name}; choose one of: {', '.join(allowed)}.")


def _in_range(name: str, value: Any, low: float, high: float, *, integer: bool = False, unit: str = "") -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise SpecError(name, f"'{name}' must be a {'whole number' if integer else 'number'}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(name, f"'{name}' must be a finite number.")
    if not low <= value <= high:
        suffix = f" {unit}" if unit else ""
        raise SpecError(name, f"'{name}' must be between {low:g} and {high:g}{suffix}; got {value:g}.")

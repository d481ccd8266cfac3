"""The job record: how one video was made, typed. These dataclasses ARE the sidecar schema.

A ``JobRecord`` holds the spec, one record per stage, the models, software and hardware, and what was
delivered. It is written as the ``.json`` sidecar next to the video, stored in the job database, and
read back by attribute everywhere (UI, CLI, ETA calibration, resume). This module is the only place
that turns it into a dict or reads one by key.

Compatibility: ``SCHEMA_VERSION`` is written into every record. Records written before it existed
(version 1: sidecars and database rows of earlier releases) load unchanged, since version 2 kept
their keys; keys this release does not know are kept in ``extra`` and written back as they were.
Sub-documents owned by other layers (the memory plan, the hardware profile, the prompt analysis)
stay plain JSON objects here, so that reading a record never imports torch.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

SCHEMA_VERSION = 2

STAGE_NAMES = ("analyze", "keyframes", "motion", "assemble", "finish")

R = TypeVar("R", bound="Record")


class Record:
    """(De)serialisation shared by every record type: attribute ↔ key, nested records, unknown keys kept.

    ``None`` values are left out of the document (a missing key reads back as ``None``), which keeps
    the sidecar as short as the facts. ``KEYS`` maps an attribute to its key where the two differ.
    """

    KEYS: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if value is not None:
                document[self.KEYS.get(item.name, item.name)] = _plain(value)
        document.update(getattr(self, "extra", {}))
        return document

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise ValueError(f"a {cls.__name__} must be a JSON object, not {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        by_key = {cls.KEYS.get(f.name, f.name): f for f in dataclasses.fields(cls) if f.name != "extra"}  # type: ignore[arg-type]
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            item = by_key.get(key)
            if item is None:
                extra[key] = value
            else:
                values[item.name] = _typed(hints[item.name], value)
        if "extra" in {f.name for f in dataclasses.fields(cls)}:  # type: ignore[arg-type]
            values["extra"] = extra
        return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _typed(hint: Any, value: Any) -> Any:
    """``value`` as the annotated type: nested records and lists of records are rebuilt, the rest kept."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _typed(options[0], value) if len(options) == 1 else value
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(value)
    if origin is list and isinstance(value, list):
        (inner,) = typing.get_args(hint) or (Any,)
        return [_typed(inner, v) for v in value]
    return value


# --- pieces shared by stage records ----------------------------------------------------------------
@dataclass
class StepDown(Record):
    """One memory escalation: a reload at a lighter plan, or a VAE decode retried lighter."""

    KEYS: ClassVar[dict[str, str]] = {"from_plan": "from", "to_plan": "to"}

    model: str
    kind: str  # "step_down" | "decode_retry"
    error: str
    action: str
    from_plan: dict[str, Any] = field(default_factory=dict)  # MemoryPlan.to_dict()
    to_plan: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SizeCap(Record):
    """How far the memory planner capped the work so that it fits (frames only for motion)."""

    width: int
    height: int
    frames: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageRecord(Record):
    """What every stage records: how long it took, and whether an earlier run's work was reused."""

    seconds: float = 0.0
    kept: bool | None = None  # True: the whole stage was kept from an earlier run (checkpoint intact)
    resumed: str | None = None  # some of its artifacts were kept from an earlier run
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelStageRecord(StageRecord):
    """A stage that runs a model under a memory plan."""

    model: str = ""
    memory_plan: dict[str, Any] | None = None  # MemoryPlan.to_dict() of the plan that succeeded
    step_downs: list[StepDown] = field(default_factory=list)
    capped: SizeCap | None = None


@dataclass
class LoraRecord(Record):
    """A LoRA that was applied: its file name, content hash, weight and the model it was applied to."""

    file: str
    sha256: str
    weight: float = 0.8
    target: str = "keyframes"
    extra: dict[str, Any] = field(default_factory=dict)


# --- one record per stage ------------------------------------------------------------------------
@dataclass
class AnalyzeRecord(StageRecord):
    enhanced_prompt: str = ""
    planner: str | None = None  # who wrote the storyboard's prompts: "rules" | "llm:<model key>"
    planner_fallback: str | None = None  # why the LLM's plan was not used (the rules wrote it instead)


@dataclass
class KeyframesRecord(ModelStageRecord):
    size: list[int] | None = None  # [width, height]
    steps: int = 0
    guidance: float = 0.0
    img2img_strength: float | None = None
    prompts: list[str] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)  # None where the keyframe is the user's image
    keyframes_capped: str | None = None  # "6 → 4: too few frames for more"
    start_image: str | None = None  # the user's image as keyframe 0: its size and how it was fitted
    skipped: str | None = None  # why there are no keyframes (the motion engine needs none)
    times: list[float] | None = None  # seconds into the new video of each keyframe
    consistency: str | None = None  # how later keyframes keep the subject (ip-adapter | img2img | independent)
    consistency_detail: dict[str, Any] | None = None  # e.g. the IP-Adapter's repo, scale, reference keyframe
    loras: list[LoraRecord] | None = None  # absent: none applied


@dataclass
class SegmentRecord(Record):
    frames: int  # frames it contributes to the motion clip
    start: int | None = None  # its first frame in the motion clip
    overlap: int | None = None  # frames of what came before it continued from (reproduced, then dropped)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConditionRecord(Record):
    """What a motion call was told: a keyframe (or the source video's frames) at a frame of the motion clip."""

    keyframe: int | None = None  # storyboard index; None for source-video frames
    frame_index: int = 0  # frame of the motion clip (0 = its first)
    segment: int = 0
    kind: str = "image"  # "image" (at an index) | "first" | "last" | "source video"
    frames: int | None = None  # source video: how many frames
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class MotionRecord(ModelStageRecord):
    engine: str = ""
    conditioning: str | None = None  # keyframes | first_last | continuation | first_frame (absent before v2)
    fps: int = 0
    size: list[int] | None = None
    steps: int = 0
    max_frames_per_call: int = 0
    join: str = ""  # how the video meets its keyframes: conditioned, continuation, or crossfaded
    conditions: list[ConditionRecord] | None = None  # absent in records before v2
    segments: list[SegmentRecord] = field(default_factory=list)
    segment_seeds: list[list[int]] = field(default_factory=list)
    substitution: str | None = None  # the engine that ran instead of the one asked for, and why
    engine_reason: str | None = None  # why this engine (e.g. the automatic choice for this machine)
    segment_prompts: list[str] | None = None  # the text each segment's calls were given (engines that take text)
    loras: list[LoraRecord] | None = None  # absent: none applied


@dataclass
class AssembleRecord(StageRecord):
    frames: int = 0
    fps: int = 0
    source_frames: int = 0  # frames of the video being extended, before the continuation
    colour_match: str | None = None  # how later segments' colour was matched to the first (absent: not done)


@dataclass
class FinishRecord(StageRecord):
    """The delivered file and exactly how ffmpeg made it (also what ``finish()`` returns)."""

    path: str = ""
    format: str = ""  # "mp4/h264" | "mp4/mpeg4" | "gif" | "png-frames"
    codec: str = ""
    frames: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    filter_graph: str = ""
    ffmpeg_args: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)  # formats that failed before this one, and why
    steps: list[str] = field(default_factory=list)  # each finishing step, in order
    interpolation: str | None = None  # what made the frames at the output rate: flow | rife | minterpolate | ...
    upscaler: str | None = None  # the model upscaler that ran before lanczos (absent: lanczos only)
    upscale_tile: int | None = None  # its tile size and overlap (input pixels)
    upscale_overlap: int | None = None
    deflicker: int | None = None  # ffmpeg deflicker window in frames (absent: off)
    stem: str | None = None  # the delivered file's name without suffix (set by the job runner)

    @property
    def file(self) -> Path:
        return Path(self.path)


STAGE_RECORDS: dict[str, type[StageRecord]] = {
    "analyze": AnalyzeRecord, "keyframes": KeyframesRecord, "motion": MotionRecord,
    "assemble": AssembleRecord, "finish": FinishRecord,
}


def stage_record_from_dict(stage: str, data: Any) -> StageRecord:
    """A stage's record from its stored form (a checkpoint or a sidecar's ``stages`` entry)."""
    return STAGE_RECORDS.get(stage, StageRecord).from_dict(data)


@dataclass
class StageRecords(Record):
    analyze: AnalyzeRecord | None = None
    keyframes: KeyframesRecord | None = None
    motion: MotionRecord | None = None
    assemble: AssembleRecord | None = None
    finish: FinishRecord | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def items(self) -> list[tuple[str, StageRecord]]:
        """(name, record) of the stages that ran, in pipeline order."""
        return [(name, getattr(self, name)) for name in STAGE_NAMES if getattr(self, name) is not None]

    def set(self, stage: str, record: StageRecord) -> None:
        if stage not in STAGE_RECORDS:
            raise ValueError(f"unknown stage {stage!r}")
        setattr(self, stage, record)


# --- the job ---------------------------------------------------------------------------------------
@dataclass
class ModelSource(Record):
    """Where one model's weights came from: a Hub repository at a commit, a local file by its hash, or a
    tiny test model built offline. Enough to fetch exactly the same weights again."""

    key: str
    role: str  # keyframes | motion | planner | ip-adapter | upscaler | rife
    repo_id: str | None = None
    revision: str | None = None  # the commit (40 hex) the preset pins
    sha256: str | None = None  # a single weights file (upscaler, RIFE)
    tiny: str | None = None  # a random-weight test model: its name in the tiny set
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelsUsed(Record):
    keyframes: str | None = None
    motion: str | None = None
    sources: list[ModelSource] | None = None  # every model that made the video, with repo and revision
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResumeInfo(Record):
    kept_stages: list[str] = field(default_factory=list)
    at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoryboardFrame(Record):
    """One keyframe of the storyboard: when it is, what it shows, and how its image was made."""

    time: float  # seconds into the new video
    prompt: str
    seed: int | None = None  # None where the image is the user's (uploaded, or the i2v / extend start)
    source: str = "generated"  # generated | uploaded | start image
    image_sha256: str | None = None  # the keyframe file's hash when it was last written
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoryboardEdit(Record):
    """One change the user made while reviewing: enough to reproduce the storyboard from the sidecar."""

    action: str  # regenerate | replace | delete | insert | move | animate | discard
    index: int | None = None
    at: float = 0.0
    prompt: str | None = None
    seed: int | None = None
    time: float | None = None
    image_sha256: str | None = None  # replace: the uploaded image's hash
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Storyboard(Record):
    """The shot plan the keyframes follow; edited while a job waits for review, then approved."""

    planner: str = "rules"
    frames: list[StoryboardFrame] = field(default_factory=list)
    segment_prompts: list[str] = field(default_factory=list)  # motion text between keyframe i and i+1
    edits: list[StoryboardEdit] = field(default_factory=list)
    approved: bool = False  # the user said Animate (or the job was not reviewed)
    duration: float | None = None  # seconds of new video the times are within
    motion_frames: int | None = None  # frames of the motion clip the times map onto
    min_keyframes: int = 1  # what the motion engine can use (a first-last engine needs one per call)
    max_keyframes: int = 16
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def times(self) -> list[float]:
        return [frame.time for frame in self.frames]

    @property
    def prompts(self) -> list[str]:
        return [frame.prompt for frame in self.frames]


@dataclass
class JobRecord(Record):
    """Everything needed to reproduce one job's video; written as its sidecar JSON."""

    id: str
    spec: dict[str, Any]  # JobSpec.to_dict() as submitted
    created: float = 0.0
    schema_version: int = SCHEMA_VERSION
    attempt: int = 1
    stages: StageRecords = field(default_factory=StageRecords)
    models: ModelsUsed = field(default_factory=ModelsUsed)
    software: dict[str, str] = field(default_factory=dict)  # package -> version
    hardware: dict[str, Any] = field(default_factory=dict)  # HardwareProfile.to_dict()
    analysis: dict[str, Any] | None = None  # PromptAnalysis.to_dict()
    storyboard: Storyboard | None = None  # the keyframes' times and prompts, with the user's edits
    resume: ResumeInfo | None = None
    note: str | None = None  # e.g. "test models — output is noise"
    output: str | None = None
    format: str | None = None
    previews: list[str] = field(default_factory=list)
    finished: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> "JobRecord":
        """Any stored version; a version-1 record (no ``schema_version``) is read as today's shape."""
        from backend.spec import upgrade_spec_dict

        record = super().from_dict(data)
        record.spec = upgrade_spec_dict(record.spec or {})
        return record

    def stage_seconds(self) -> dict[str, float]:
        return {name: stage.seconds for name, stage in self.stages.items()}

    @property
    def finish_fallbacks(self) -> list[str]:
        return list(self.stages.finish.fallbacks) if self.stages.finish is not None else []

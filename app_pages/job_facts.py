"""A job's settings and record as readable rows: the Gallery's record table and Compare's differences.

Values come from the stored spec (a dict, as submitted) and the job record's attributes; everything is
turned into short text for ``st.dataframe`` (cells are text, never HTML). Nothing here fails on an old
or partial spec: a missing setting reads "—".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app_pages.common import fmt_seconds, fmt_when, shown

if TYPE_CHECKING:
    from backend.jobs.orchestrator import JobStatus

# Spec keys in reading order, with their labels; keys not listed follow under their own name.
SETTING_LABELS: dict[str, str] = {
    "prompt": "Prompt", "enhanced_prompt": "Enhanced prompt (edited)", "negative_prompt": "Negative prompt",
    "mode": "Mode", "model_set": "Models", "preset": "Quality preset", "size": "Size", "duration": "Duration",
    "fps": "Frame rate", "seed": "Seed", "guidance": "Guidance", "steps": "Steps", "keyframes": "Keyframes",
    "engine": "Motion engine", "motion_strength": "Motion strength", "image": "Start image",
    "video": "Video extended", "finish.grade": "Colour grade", "finish.lut": "LUT", "finish.sharpen": "Sharpen",
    "finish.stabilize": "Stabilise", "finish.interpolation": "Frame interpolation", "finish.aspect": "Fit to size",
    "finish.crf": "Quality (CRF)", "finish.upscale": "Upscaler", "finish.colour_match": "Colour matching",
    "finish.deflicker": "Deflicker", "finish.encoder": "Encoder", "review": "Review the storyboard",
    "planner": "Storyboard planner", "consistency": "Keyframe consistency", "loras": "LoRAs",
}
WHEN_UNSET = {"seed": "random", "guidance": "preset default", "steps": "preset default",
              "keyframes": "from duration", "enhanced_prompt": "(derived from the prompt)"}
SKIPPED = {"width", "height"}  # shown together as "Size"
RUN_FACTS = ("Keyframe model", "Motion model", "Engine used", "Keyframes made", "Delivered", "Format")  # compared


def _text(key: str, value: Any) -> str:
    if value is None or value == "":
        return WHEN_UNSET.get(key, "—")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(_text(key, v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(k, v)}" for k, v in value.items())
    return shown(value)


def settings(spec: dict[str, Any]) -> dict[str, str]:
    """Every setting of a stored spec as label -> text, in reading order."""
    if not isinstance(spec, dict):
        return {}
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "finish" and isinstance(value, dict):
            flat.update({f"finish.{k}": v for k, v in value.items()})
        elif key not in SKIPPED:
            flat[key] = value
    if "width" in spec or "height" in spec:
        flat["size"] = f"{spec.get('width', '?')}×{spec.get('height', '?')}"
    if "duration" in flat and isinstance(flat["duration"], (int, float)):
        flat["duration"] = f"{float(flat['duration']):g} s"
    if "fps" in flat:
        flat["fps"] = f"{flat['fps']} fps"
    order = list(SETTING_LABELS)
    keys = sorted(flat, key=lambda k: (order.index(k) if k in order else len(order), k))
    return {SETTING_LABELS.get(k, k): _text(k, flat[k]) for k in keys}


def outcome(job: "JobStatus") -> dict[str, str]:
    """What the run did, from the job record's attributes (models, engine used, timings, file)."""
    facts = {"State": job.state, "Took": fmt_seconds(job.elapsed), "Finished": fmt_when(job.finished)}
    record = job.record
    if record is not None:
        stages = record.stages
        if record.models.keyframes:
            facts["Keyframe model"] = shown(record.models.keyframes)
        if record.models.motion:
            facts["Motion model"] = shown(record.models.motion)
        if stages.motion is not None and stages.motion.engine:
            facts["Engine used"] = shown(stages.motion.engine)
        if stages.keyframes is not None and stages.keyframes.prompts:
            facts["Keyframes made"] = str(len(stages.keyframes.prompts))
        if stages.finish is not None and stages.finish.width:
            facts["Delivered"] = f"{stages.finish.width}×{stages.finish.height}, {stages.finish.frames} frames"
        if record.format:
            facts["Format"] = shown(record.format)
        for name, seconds in record.stage_seconds().items():
            facts[f"{name} stage"] = fmt_seconds(seconds)
    facts["Job id"] = job.id
    return facts


def record_rows(job: "JobStatus", group_label: str | None = None) -> list[dict[str, str]]:
    """The readable record: settings, then what the run did (rows of a two-column table)."""
    rows = [{"field": label, "value": value} for label, value in settings(job.spec).items()]
    if group_label:
        rows.append({"field": "Variation", "value": shown(group_label)})
    rows += [{"field": label, "value": value} for label, value in outcome(job).items()]
    return rows


def differences(jobs: list["JobStatus"], names: list[str], *, everything: bool = False) -> list[dict[str, str]]:
    """Rows of the settings (and run facts) that differ between ``jobs`` (all of them with ``everything``)."""
    columns = [{**settings(job.spec), **{k: v for k, v in outcome(job).items() if k in RUN_FACTS}} for job in jobs]
    labels: list[str] = []
    for column in columns:
        labels += [label for label in column if label not in labels]
    rows = []
    for label in labels:
        values = [column.get(label, "—") for column in columns]
        if everything or len(set(values)) > 1:
            rows.append({"setting": label, **dict(zip(names, values))})
    return rows

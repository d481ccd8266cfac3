"""Which weights made a video: every model a job used, with its Hub repository and pinned commit (or the
hash of a local weights file, or the tiny test model's name), read from the stage records at delivery.
The sidecar keeps the full list; the MP4's comment tag keeps ``key@commit`` for each."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from backend.hashing import file_sha256
from backend.models.needs import find_preset
from backend.models.registry import ModelRef, finishing_model_for
from backend.record import JobRecord, ModelSource

log = logging.getLogger(__name__)


def model_sources(record: JobRecord, model_set: str, models_root: Path) -> list[ModelSource]:
    """The models of the stages that ran, in pipeline order, each once."""
    stages = record.stages
    used: list[tuple[str, str]] = []  # (registry key, role)
    if stages.analyze is not None and (stages.analyze.planner or "").startswith("llm:"):
        used.append((stages.analyze.planner.split(":", 1)[1], "planner"))
    if stages.keyframes is not None and stages.keyframes.model and not stages.keyframes.skipped:
        used.append((stages.keyframes.model, "keyframes"))
        adapter = (stages.keyframes.consistency_detail or {}).get("adapter")
        if stages.keyframes.consistency == "ip-adapter" and isinstance(adapter, str):
            used.append((adapter, "ip-adapter"))
    if stages.motion is not None and stages.motion.model:
        used.append((stages.motion.model, "motion"))
    finish = stages.finish
    if finish is not None and finish.upscaler:
        used.append((finishing_model_for(model_set, "upscaler").key, "upscaler"))
    if finish is not None and finish.interpolation == "rife":
        used.append((finishing_model_for(model_set, "rife").key, "rife"))
    sources = []
    for key, role in dict.fromkeys(used):
        try:
            sources.append(_source(find_preset(key), role, models_root))
        except ValueError:  # a key a later release renamed: keep what is known
            sources.append(ModelSource(key, role))
    return sources


def comment_line(sources: list[ModelSource]) -> str:
    """``sdxl-base@4621659 ltx-2b@e58e28c``: short enough for the MP4's comment tag."""
    def short(source: ModelSource) -> str:
        commit = source.revision if source.revision and re.fullmatch(r"[0-9a-f]{40}", source.revision) else None
        if commit:
            return f"{source.key}@{commit[:7]}"
        if source.sha256:  # a single file pinned by content: its hash names it, a branch name would not
            return f"{source.key}@sha256:{source.sha256[:7]}"
        return f"{source.key}@{source.revision or 'tiny'}"
    return " ".join(short(s) for s in sources)


def _source(ref: ModelRef, role: str, models_root: Path) -> ModelSource:
    if ref.is_tiny:
        return ModelSource(ref.key, role, tiny=ref.tiny_name)
    source = ModelSource(ref.key, role, repo_id=ref.repo_id, revision=ref.revision if ref.repo_id else None)
    if role in ("upscaler", "rife"):  # one weights file: its content names it exactly
        from backend.models.finishing import weights_file

        try:
            source.sha256 = file_sha256(weights_file(ref, models_root))
        except (OSError, ValueError) as exc:  # the file went away after the job used it: say what is known
            log.warning("could not hash the weights of %s: %s", ref.key, exc)
    return source

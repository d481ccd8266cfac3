"""Every model that made a video is named in its record with the Hub repository and the pinned commit
(or the weights file's hash, or the tiny model's name), and in short form in the MP4's comment."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from backend.jobs.model_sources import comment_line, model_sources
from backend.jobs.outputs import compact_comment
from backend.models.registry import FINISHING_MODELS, MODELS
from backend.record import (
    AnalyzeRecord,
    FinishRecord,
    JobRecord,
    KeyframesRecord,
    MotionRecord,
)

pytestmark = pytest.mark.unit


def _record(**stages) -> JobRecord:
    record = JobRecord(id="j1", spec={"prompt": "x", "model_set": "default"})
    for name, stage in stages.items():
        record.stages.set(name, stage)
    return record


def test_real_models_are_named_by_repository_and_commit(tmp_path: Path) -> None:
    record = _record(
        analyze=AnalyzeRecord(planner="llm:qwen2.5-1.5b-instruct"),
        keyframes=KeyframesRecord(model="sdxl-base", consistency="ip-adapter",
                                  consistency_detail={"adapter": "ip-adapter-sdxl"}),
        motion=MotionRecord(model="wan-flf2v-14b"),
        finish=FinishRecord(interpolation="flow"),
    )
    sources = model_sources(record, "default", tmp_path)
    assert [(s.key, s.role) for s in sources] == [
        ("qwen2.5-1.5b-instruct", "planner"), ("sdxl-base", "keyframes"), ("ip-adapter-sdxl", "ip-adapter"),
        ("wan-flf2v-14b", "motion")]
    for source in sources:
        assert source.repo_id and re.fullmatch(r"[0-9a-f]{40}", source.revision), source
    assert sources[1].revision == MODELS["sdxl-base"].revision
    record.models.sources = sources
    comment = json.loads(compact_comment(record))
    assert comment["weights"].split() == [
        "qwen2.5-1.5b-instruct@989aa79", "sdxl-base@4621659", "ip-adapter-sdxl@018e402", "wan-flf2v-14b@17c3076"]
    again = JobRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.models.sources == sources  # the sidecar keeps them typed


def test_tiny_models_and_weights_files_are_named_by_what_they_are(tmp_path: Path) -> None:
    record = _record(keyframes=KeyframesRecord(model="tiny-sdxl"), motion=MotionRecord(model="tiny-ltx"),
                     finish=FinishRecord(interpolation="rife"))
    sources = model_sources(record, "tiny", Path(__import__("os").environ["STUDIO_MODELS_DIR"]))
    assert [(s.key, s.tiny) for s in sources] == [("tiny-sdxl", "sdxl"), ("tiny-ltx", "ltx-condition"),
                                                  ("tiny-rife", "rife")]
    assert all(s.repo_id is None and s.revision is None for s in sources)
    assert comment_line(sources) == "tiny-sdxl@tiny tiny-ltx@tiny tiny-rife@tiny"


def test_a_single_weights_file_is_named_by_its_content(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "rife-4.9" / "rife49.pth"
    path.parent.mkdir()
    path.write_bytes(b"the published file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(FINISHING_MODELS, "rife-4.9", replace(FINISHING_MODELS["rife-4.9"], sha256=digest))
    record = _record(keyframes=KeyframesRecord(model="sdxl-base"), finish=FinishRecord(interpolation="rife"))
    (_, rife) = model_sources(record, "default", tmp_path)
    assert (rife.key, rife.role, rife.repo_id, rife.sha256) == ("rife-4.9", "rife", "lividtm/RIFE", digest)
    assert comment_line([rife]) == f"rife-4.9@sha256:{digest[:7]}"  # not "@main": the hash is the pin

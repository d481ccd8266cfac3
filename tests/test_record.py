"""The job record: typed, versioned, and every record written before it had a version still loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from legacy_data import V1_SIDECAR, insert_v1_job

from backend.jobs.checkpoints import kept_stages
from backend.jobs.store import JobStore
from backend.record import (
    SCHEMA_VERSION,
    FinishRecord,
    JobRecord,
    KeyframesRecord,
    MotionRecord,
    StageRecords,
    StepDown,
    stage_record_from_dict,
)
from backend.spec import JobSpec

pytestmark = pytest.mark.unit



def test_a_version_1_sidecar_loads_by_attribute() -> None:
    data = json.loads(V1_SIDECAR.read_text())
    assert "schema_version" not in data and "post" in data["spec"]
    record = JobRecord.from_dict(data)
    assert record.id == data["id"] and record.attempt == 1 and record.note == "test models — output is noise"
    assert record.models.keyframes == "tiny-sdxl" and record.models.motion == "tiny-svd"
    keyframes, motion, finish = record.stages.keyframes, record.stages.motion, record.stages.finish
    assert isinstance(keyframes, KeyframesRecord) and keyframes.steps == 2 and len(keyframes.seeds) == 2
    assert keyframes.memory_plan["level"] == "cpu" and keyframes.step_downs == []
    assert isinstance(motion, MotionRecord) and [s.frames for s in motion.segments] == [4]
    assert "crossfade" in motion.join and motion.segment_seeds == [[415058522]]
    assert isinstance(finish, FinishRecord) and finish.format == "mp4/h264" and finish.stem
    assert record.stage_seconds() == {name: data["stages"][name]["seconds"] for name in data["stages"]}
    assert record.format == "mp4/h264" and record.previews == data["previews"]
    # The spec inside is upgraded ("post" was finishing's old name) and still builds a JobSpec.
    assert "post" not in record.spec and record.spec["finish"]["grade"] == "neutral"
    assert JobSpec.from_dict(record.spec).finish.grade == "neutral"


def test_a_record_round_trips_and_keeps_what_it_does_not_know() -> None:
    data = json.loads(V1_SIDECAR.read_text())
    data["from_the_future"] = {"x": 1}
    data["stages"]["motion"]["new_knob"] = 3
    record = JobRecord.from_dict(data)
    again = record.to_dict()
    assert again["schema_version"] == SCHEMA_VERSION
    assert again["from_the_future"] == {"x": 1} and again["stages"]["motion"]["new_knob"] == 3
    for key in ("stages", "models", "software", "hardware", "analysis", "previews", "output", "format"):
        assert again[key] == data[key], key
    assert JobRecord.from_dict(json.loads(json.dumps(again))).to_dict() == again


def test_step_downs_keep_their_document_keys() -> None:
    step = StepDown(model="svd-xt", kind="step_down", error="CUDA out of memory", action="reloaded",
                    from_plan={"level": "gpu"}, to_plan={"level": "model_offload"})
    assert step.to_dict()["from"] == {"level": "gpu"} and step.to_dict()["to"]["level"] == "model_offload"
    back = stage_record_from_dict("motion", {"step_downs": [step.to_dict()], "seconds": 1.5})
    assert isinstance(back, MotionRecord) and back.step_downs == [step] and back.seconds == 1.5


def test_wrong_shapes_are_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        JobRecord.from_dict([1, 2])
    with pytest.raises(ValueError, match="unknown stage"):
        StageRecords().set("polish", KeyframesRecord())


def test_a_version_1_database_row_and_its_checkpoints_load(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "studio.db")
    job_id = insert_v1_job(store.path, tmp_path)["id"]
    row = store.get(job_id)
    assert row is not None and row.state == "done"
    assert row.spec["finish"]["crf"] == 18 and "post" not in row.spec  # upgraded on read
    assert row.record is not None and row.record.stages.motion.engine == "svd"
    checkpoints = store.stages(job_id)
    assert set(checkpoints) == {"analyze", "keyframes", "motion", "assemble", "finish"}
    keyframes = checkpoints["keyframes"]
    assert isinstance(keyframes.record, KeyframesRecord) and keyframes.record.steps == 2
    assert keyframes.artifacts and all(name.startswith("keyframes/") for name in keyframes.artifacts)
    # Resume logic reads the same checkpoints: with no work folder left, nothing can be kept.
    assert kept_stages(checkpoints, tmp_path / "gone") == {"analyze": checkpoints["analyze"].record}


def test_a_record_comes_back_from_the_store_equal(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "studio.db")
    record = JobRecord.from_dict(json.loads(V1_SIDECAR.read_text()))
    store.add(record.id, record.spec)
    store.finish(record.id, "done", output="x.mp4", sidecar="x.json", record=record)
    assert store.get(record.id).record == record

"""Stored rows back into ``JobRow``s and ``StageCheckpoint``s, whatever a row holds.

The history must always read: a row written by an older release (a prompt with a lone surrogate from
an undecodable command-line byte), a JSON column that does not parse, or one of the wrong shape gives
a readable placeholder (state kept, an unreadable spec shown as ``{}`` with a note in ``error``) and one
line in the log file, never an exception. Text is made encodable (lone surrogates become U+FFFD), so
every front door can print, serialise and show it.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from backend.record import JobRecord, StageRecord, stage_record_from_dict
from backend.spec import upgrade_spec_dict

log = logging.getLogger(__name__)

CHECKPOINT_ARTIFACTS = "artifacts"
UNREADABLE_SPEC = "The stored settings of this job could not be read ({}); delete it, or run it again to see why."
_SURROGATES = re.compile("[\ud800-\udfff]")
_reported: set[tuple[str, str]] = set()  # (job id, what) already logged: a bad row is reported once per process


@dataclass(frozen=True)
class JobRow:
    id: str
    seq: int
    state: str
    spec: dict[str, Any]  # JobSpec.to_dict() as submitted (specs of earlier releases upgraded on read)
    record: JobRecord | None  # None until the job's first stage is checkpointed
    stage: str
    fraction: float
    message: str
    error: str | None
    output: str | None
    sidecar: str | None
    cancel_requested: bool
    created: float
    started: float | None
    finished: float | None


@dataclass(frozen=True)
class StageCheckpoint:
    """A finished stage of one run: its record and the size of each artifact it left in the work folder."""

    stage: str
    state: str  # "done"
    seconds: float | None
    record: StageRecord
    artifacts: dict[str, int]  # path relative to the work folder -> size in bytes


def readable(value: Any) -> Any:
    """``value`` with every lone surrogate in its text (keys and nested values too) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, dict):
        return {readable(k): readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    return value


def to_row(row: sqlite3.Row) -> JobRow:
    """A ``JobRow`` for any stored row; never raises (see the module docstring)."""
    try:
        return _decode(row)
    except Exception as exc:  # noqa: BLE001 - defensive: whatever else a row holds, the history must read
        job_id = _text(_get(row, "id")) or "?"
        _report(job_id, "row", "job %s: its stored row could not be read (%s); shown as a placeholder", job_id, exc)
        return JobRow(job_id, 0, _text(_get(row, "state")) or "failed", {}, None, "", 0.0, "",
                      UNREADABLE_SPEC.format(f"{type(exc).__name__}: {exc}"), None, None, False, 0.0, None, None)


def _decode(row: sqlite3.Row) -> JobRow:
    job_id = _text(_get(row, "id")) or "?"
    notes: list[str] = []
    spec = _spec(job_id, _get(row, "spec"), notes)
    error = _optional_text(_get(row, "error"))
    if notes:
        error = "; ".join(filter(None, [error, UNREADABLE_SPEC.format(notes[0])]))
    return JobRow(
        id=job_id, seq=_whole(_get(row, "seq")), state=_text(_get(row, "state")) or "failed", spec=spec,
        record=record_from_json(_get(row, "record"), job_id), stage=_text(_get(row, "stage")),
        fraction=_number(_get(row, "fraction"), 0.0), message=_text(_get(row, "message")), error=error,
        output=_optional_text(_get(row, "output")), sidecar=_optional_text(_get(row, "sidecar")),
        cancel_requested=bool(_number(_get(row, "cancel_requested"), 0)), created=_number(_get(row, "created"), 0.0),
        started=_optional_number(_get(row, "started")), finished=_optional_number(_get(row, "finished")),
    )


def to_checkpoint(row: sqlite3.Row) -> StageCheckpoint | None:
    """A stage checkpoint, or None if it cannot be read (that stage is then simply run again)."""
    try:
        stored = readable(json.loads(row["checkpoint"] or "{}"))
        artifacts = stored.pop(CHECKPOINT_ARTIFACTS, None) if isinstance(stored, dict) else None
        return StageCheckpoint(row["name"], row["state"], row["seconds"], stage_record_from_dict(row["name"], stored),
                               artifacts if isinstance(artifacts, dict) else {})
    except Exception as exc:  # noqa: BLE001 - a bad checkpoint only means that stage is not kept
        _report(f"{_get(row, 'job_id')}/{_get(row, 'name')}", "checkpoint",
                "a stored stage checkpoint could not be read (%s); that stage will run again", exc)
        return None


def record_from_json(text: Any, job_id: str = "?") -> JobRecord | None:
    try:
        data = json.loads(text or "{}")
        if not data:
            return None
        return JobRecord.from_dict(readable(data))
    except Exception as exc:  # noqa: BLE001 - a row of the wrong shape must not break the history
        _report(job_id, "record", "a stored job record could not be read (%s); showing the job without it", exc)
        return None


def _spec(job_id: str, text: Any, notes: list[str]) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        notes.append(f"unreadable JSON: {exc}")
    else:
        if isinstance(data, dict):
            cleaned = readable(data)
            if cleaned != data:
                _report(job_id, "text", "job %s: its stored settings hold text that is not valid Unicode "
                        "(from an older release); shown with U+FFFD in its place", job_id)
            try:
                return upgrade_spec_dict(cleaned)
            except Exception as exc:  # noqa: BLE001 - defensive: an upgrade must not break the history
                notes.append(f"{type(exc).__name__}: {exc}")
        else:
            notes.append(f"a JSON {type(data).__name__}, not an object")
    _report(job_id, "spec", "job %s: its stored settings could not be read (%s); shown as a placeholder",
            job_id, notes[-1])
    return {}


def _report(job_id: str, what: str, message: str, *args: Any) -> None:
    if (job_id, what) not in _reported:
        _reported.add((job_id, what))
        log.info(message, *args)  # the file log (the listing itself shows the placeholder)


def _get(row: Any, key: str) -> Any:
    try:
        return row[key]
    except (IndexError, KeyError):
        return None


def _text(value: Any) -> str:
    return readable(value if isinstance(value, str) else "" if value is None else str(value))


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value)
        except (TypeError, ValueError):
            return default
    return value


def _whole(value: Any) -> int:
    try:
        return int(_number(value, 0))
    except (OverflowError, ValueError):  # inf, nan
        return 0


def _optional_number(value: Any) -> float | None:
    return None if value is None else _number(value, None)  # type: ignore[arg-type]

"""The fleet's typed records, the key of a job, and the ledger that lets a re-run skip finished jobs.

A job is keyed by the SHA-256 of its spec as written in the manifest (canonical JSON), so running the
same manifest again finds the jobs it already delivered — their record in ``<out>/.fleet/done/<key>.json``
and the MP4 and sidecar it names — and skips them; a job whose files were removed runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LEDGER = Path(".fleet", "done")
DONE, SKIPPED, FAILED, INVALID = "done", "skipped", "failed", "invalid"


def spec_key(spec: dict[str, Any]) -> str:
    """The job's identity: a hash of its spec (canonical JSON, seed included when given)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FleetJob:
    """One job as the driver hands it to a worker: its spec already admitted (seed drawn)."""

    index: int  # position in the manifest
    key: str  # spec_key of the manifest's spec
    spec: dict[str, Any]  # JobSpec.to_dict() after admission
    attempt: int = 1

    @property
    def job_id(self) -> str:
        return self.key[:32]  # the same id on every worker and every attempt: the same output name stem


@dataclass(frozen=True)
class WorkerResult:
    """What a worker sends back: the delivered files' bytes (names only, no paths) and where it ran."""

    video_name: str
    video: bytes
    sidecar_name: str
    sidecar: bytes
    worker: str
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # the job failed (the worker lives on): a message for the user


@dataclass(frozen=True)
class WorkerInfo:
    """Where a worker runs: its process (the one to kill in a fault test) and its node-local folder."""

    name: str
    pid: int
    node: str
    home: str
    gpu: str | None


@dataclass(frozen=True)
class FleetRecord:
    """One line of the fleet's output: how one manifest job ended."""

    index: int
    key: str
    status: str  # done | skipped | failed | invalid
    output: str | None = None
    sidecar: str | None = None
    error: str | None = None
    seed: int | None = None
    worker: str | None = None
    attempts: int = 0
    seconds: float | None = None
    stages: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """Finished jobs under ``<out>/.fleet/done/``; a job counts as done only while its files exist."""

    def __init__(self, out: Path) -> None:
        self.folder = out / LEDGER

    def done(self, key: str) -> FleetRecord | None:
        path = self.folder / f"{key}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record = FleetRecord(**data)
        except (OSError, ValueError, TypeError):
            return None
        if record.key != key or not all(p and Path(p).is_file() for p in (record.output, record.sidecar)):
            return None
        return record

    def add(self, record: FleetRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / f"{record.key}.json", json.dumps(record.to_dict(), indent=2).encode())


def write_atomic(path: Path, data: bytes) -> None:
    """Write under a temporary name in the same folder, then rename: no half file is ever visible."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def prepare(items: list[Any]) -> tuple[list[FleetJob], list[FleetRecord]]:
    """Manifest items (``backend.cli.manifest.ManifestItem``) as fleet jobs, and a record for each bad one.

    Each good spec is admitted like ``submit`` does (validated, inputs present, the seed drawn once here,
    so every attempt on any worker makes the same video).
    """
    from backend.errors import SpecError
    from backend.jobs.admission import admit

    jobs, invalid = [], []
    for item in items:
        if item.spec is None:
            invalid.append(FleetRecord(item.index, "", INVALID, error=item.error))
            continue
        key = spec_key(item.spec.to_dict())
        try:
            if item.spec.review:  # nobody is there to review: a fleet batch runs every job to the end
                raise SpecError("review", "'review' is for the studio and the CLI; a fleet batch runs every job "
                                          "to the end (remove it, or review the job with `generate --review`).")
            admitted = admit(item.spec)
        except SpecError as exc:
            invalid.append(FleetRecord(item.index, key, INVALID, error=f"manifest item {item.index}: {exc}"))
            continue
        jobs.append(FleetJob(item.index, key, admitted.to_dict()))
    return jobs, invalid

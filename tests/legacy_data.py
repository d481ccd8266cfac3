"""Jobs exactly as the release before the typed job record (schema 1) stored them, for compatibility tests."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

DATA = Path(__file__).parent / "data"
V1_SIDECAR = DATA / "v1_sidecar.json"  # written by that release for one tiny job
V1_ROW = DATA / "v1_store_row.json"  # that release's jobs and stages rows for the same job


def insert_v1_job(database: Path, outputs: Path, *, post: dict | None = None) -> dict:
    """Write the saved rows with raw SQL into an existing store; point output and sidecar into ``outputs``.

    ``post`` changes the spec's finishing options (schema 1 called them "post"). Returns the jobs row as
    inserted.
    """
    saved = json.loads(V1_ROW.read_text())
    job = saved["job"]
    job["spec"]["post"].update(post or {})
    old_outputs = str(Path(job["output"]).parent)
    for name in ("output", "sidecar"):
        job[name] = job[name].replace(old_outputs, str(outputs))
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO jobs (id, seq, state, spec, record, stage, fraction, message, error, output, sidecar,"
                   " cancel_requested, created, started, finished) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                   (job["id"], job["state"], json.dumps(job["spec"]), json.dumps(job["record"]), job["stage"],
                    job["fraction"], job["message"], job["error"], job["output"], job["sidecar"], job["created"],
                    job["started"], job["finished"]))
        for stage in saved["stages"]:
            db.execute("INSERT INTO stages (job_id, name, state, seconds, checkpoint) VALUES (?, ?, ?, ?, ?)",
                       (stage["job_id"], stage["name"], stage["state"], stage["seconds"],
                        json.dumps(stage["checkpoint"])))
    return job

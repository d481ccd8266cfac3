"""``GET /v1/jobs/{id}/events``: progress as server-sent events until the job ends.

Each ``progress`` event carries the stage, step, overall fraction, ETA and the newest preview's URL; the
stream sends one ``end`` event with the final state (and the video's URL when done) and closes. A
comment line every few seconds keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from backend.api.jobs import find_status, generator_of

if TYPE_CHECKING:  # pragma: no cover
    from backend.jobs.orchestrator import VideoGenerator
    from backend.jobs.status import JobStatus

router = APIRouter(tags=["jobs"])
POLL_S = 0.25
KEEPALIVE_S = 10.0


@dataclass(frozen=True)
class ProgressEvent:
    """What one ``progress`` event says."""

    state: str
    stage: str
    step: int | None
    total_steps: int | None
    fraction: float
    eta_seconds: float | None
    message: str
    preview: str | None

    @classmethod
    def of(cls, status: "JobStatus") -> "ProgressEvent":
        preview = f"/v1/jobs/{status.id}/previews/{len(status.previews) - 1}" if status.previews else None
        eta = round(status.eta_seconds, 1) if status.eta_seconds is not None else None
        return cls(status.state, status.stage, status.step, status.total_steps, round(status.fraction, 4), eta,
                   status.message, preview)


def sse(event: str, data: dict, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stream(generator: "VideoGenerator", job_id: str, request: Request | None = None) -> AsyncIterator[str]:
    last: ProgressEvent | None = None
    sent, quiet_since = 0, time.monotonic()
    while True:
        status = await run_in_threadpool(generator.status, job_id)
        current = ProgressEvent.of(status)
        if current != last:
            sent += 1
            last, quiet_since = current, time.monotonic()
            yield sse("progress", current.__dict__, sent)
        if not status.is_active:
            end = {"state": status.state, "error": status.error,
                   "video": f"/v1/jobs/{job_id}/video" if status.output else None,
                   "record": f"/v1/jobs/{job_id}/record" if status.sidecar else None}
            yield sse("end", end, sent + 1)
            return
        if time.monotonic() - quiet_since >= KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        if request is not None and await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S)


@router.get("/v1/jobs/{job_id}/events", summary="Progress as server-sent events (text/event-stream)",
            response_class=StreamingResponse)
async def events(job_id: str, request: Request) -> StreamingResponse:
    generator = generator_of(request)
    await run_in_threadpool(find_status, generator, job_id)  # 404 before the stream starts
    return StreamingResponse(stream(generator, job_id, request), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

"""``/v1/jobs``: create, list, get, cancel, resume and delete jobs on the shared ``VideoGenerator``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from backend.api.schemas import JobSpecBody, JobView, spec_dict
from backend.errors import SpecError, UnsafePath
from backend.media.safe_files import resolve_inside
from backend.spec import JobSpec

if TYPE_CHECKING:  # pragma: no cover
    from backend.jobs.orchestrator import VideoGenerator
    from backend.jobs.status import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
INPUT_FIELDS = (("image", "images"), ("video", "videos"))


def generator_of(request: Request) -> "VideoGenerator":
    return request.app.state.generator


def job_view(status: "JobStatus") -> JobView:
    base = f"/v1/jobs/{status.id}"
    links = {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel", "resume": f"{base}/resume"}
    if status.output:
        links["video"] = f"{base}/video"
    if status.sidecar:
        links["record"] = f"{base}/record"
    return JobView(
        id=status.id, state=status.state, stage=status.stage, fraction=status.fraction, message=status.message,
        step=status.step, total_steps=status.total_steps, eta_seconds=status.eta_seconds, error=status.error,
        created=status.created, started=status.started, finished=status.finished, spec=status.spec,
        video_name=Path(status.output).name if status.output else None, links=links,
        previews=[f"{base}/previews/{n}" for n in range(len(status.previews))],
    )


def find_status(generator: "VideoGenerator", job_id: str) -> "JobStatus":
    try:
        return generator.status(job_id)
    except KeyError:
        raise HTTPException(404, f"no job {job_id}") from None


def check_inputs(spec: JobSpec, uploads: Path) -> None:
    """Input files must be ones uploaded through the API (inside uploads/), never any path on the server."""
    named = [(name, getattr(spec, name), folder) for name, folder in INPUT_FIELDS]
    named.append(("finish.lut", spec.finish.lut, "luts"))
    for name, value, folder in named:
        if not value:
            continue
        try:
            resolve_inside(value, uploads / folder)
        except UnsafePath:
            raise SpecError(name, f"'{name}' must be the path returned by POST /v1/uploads/"
                                  f"{folder.rstrip('s')}.") from None


@router.post("", status_code=201, response_model=JobView, summary="Queue a job from a JobSpec")
async def create_job(body: JobSpecBody, request: Request) -> JobView:  # type: ignore[valid-type]
    generator = generator_of(request)
    spec = JobSpec.from_dict(spec_dict(body))  # SpecError → 422 (see app.py)
    check_inputs(spec, generator.paths.uploads)
    job_id = await run_in_threadpool(generator.submit, spec)
    return job_view(generator.status(job_id))


@router.get("", response_model=list[JobView], summary="Jobs, newest first")
async def list_jobs(request: Request, limit: int = 50, state: str | None = None) -> list[JobView]:
    statuses = await run_in_threadpool(generator_of(request).history, max(1, min(limit, 1000)))
    return [job_view(s) for s in statuses if state is None or s.state == state]


@router.get("/{job_id}", response_model=JobView, summary="One job")
async def get_job(job_id: str, request: Request) -> JobView:
    return job_view(await run_in_threadpool(find_status, generator_of(request), job_id))


@router.post("/{job_id}/cancel", response_model=JobView, summary="Cancel a queued or running job")
async def cancel_job(job_id: str, request: Request) -> JobView:
    generator = generator_of(request)
    status = await run_in_threadpool(find_status, generator, job_id)
    if not status.is_active and status.state != "awaiting_review":  # a storyboard waiting is discarded
        raise HTTPException(409, f"job {job_id} is {status.state}; there is nothing to cancel")
    await run_in_threadpool(generator.cancel, job_id)
    return job_view(generator.status(job_id))


@router.post("/{job_id}/resume", response_model=JobView, summary="Resume a failed, cancelled or interrupted job")
async def resume_job(job_id: str, request: Request) -> JobView:
    generator = generator_of(request)
    status = await run_in_threadpool(find_status, generator, job_id)
    if not await run_in_threadpool(generator.resume, job_id):
        raise HTTPException(409, f"job {job_id} is {status.state}; only failed, cancelled or interrupted "
                                 "jobs can be resumed")
    return job_view(generator.status(job_id))


@router.delete("/{job_id}", status_code=204, summary="Delete a finished job and its files")
async def delete_job(job_id: str, request: Request) -> None:
    generator = generator_of(request)
    status = await run_in_threadpool(find_status, generator, job_id)
    if not await run_in_threadpool(generator.delete, job_id):
        raise HTTPException(409, f"job {job_id} is {status.state}; running jobs cannot be deleted")

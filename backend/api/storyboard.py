"""``/v1/jobs/{id}/storyboard``: review a job created with ``"review": true`` over HTTP — read its
storyboard and keyframe images, redraw one keyframe, then animate (Discard is ``POST …/cancel``).
Keyframes are numbered from 1, as in the studio and the CLI; a job not waiting for review is a 409."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from backend.api.files import _served
from backend.api.jobs import find_status, generator_of, job_view
from backend.api.schemas import JobView
from backend.spec import MAX_SEED

router = APIRouter(prefix="/v1/jobs", tags=["storyboard"])


class RegenerateBody(BaseModel):
    keyframe: int = Field(ge=1, description="which keyframe to draw again (1 = the first)")
    prompt: str | None = Field(default=None, description="its new prompt (unchanged when absent)")
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="its seed (a new random one: new_seed)")
    new_seed: bool = False


@router.get("/{job_id}/storyboard", summary="The storyboard of a job waiting for review")
async def get_storyboard(job_id: str, request: Request) -> dict[str, Any]:
    generator = generator_of(request)
    await run_in_threadpool(find_status, generator, job_id)
    board = (await run_in_threadpool(generator.storyboard_editor().load, job_id))[1]  # StoryboardError → 409
    document = board.to_dict()
    document["keyframe_images"] = [f"/v1/jobs/{job_id}/storyboard/keyframes/{n}"
                                   for n in range(1, len(board.frames) + 1)]
    return document


@router.get("/{job_id}/storyboard/keyframes/{number}", summary="One keyframe image (PNG) of the storyboard")
async def keyframe_image(job_id: str, number: int, request: Request) -> FileResponse:
    generator = generator_of(request)
    await run_in_threadpool(find_status, generator, job_id)  # 404 before any path is made from the id
    board = (await run_in_threadpool(generator.storyboard_editor().load, job_id))[1]
    if not 1 <= number <= len(board.frames):
        raise HTTPException(404, f"no keyframe {number}")
    files = generator.storyboard_editor().keyframe_files(job_id, len(board.frames))
    return FileResponse(_served(str(files[number - 1]), generator.paths.temp, "keyframe"), media_type="image/png")


@router.post("/{job_id}/storyboard/regenerate", response_model=JobView, summary="Draw one keyframe again")
async def regenerate(job_id: str, body: RegenerateBody, request: Request) -> JobView:
    generator = generator_of(request)
    await run_in_threadpool(find_status, generator, job_id)
    await run_in_threadpool(lambda: generator.storyboard_editor().regenerate(
        job_id, body.keyframe - 1, prompt=body.prompt, seed=body.seed, new_seed=body.new_seed))
    return job_view(generator.status(job_id))


@router.post("/{job_id}/animate", response_model=JobView, summary="Approve the storyboard: motion and finishing run")
async def animate(job_id: str, request: Request) -> JobView:
    generator = generator_of(request)
    await run_in_threadpool(find_status, generator, job_id)
    await run_in_threadpool(generator.storyboard_editor().animate, job_id)
    return job_view(generator.status(job_id))

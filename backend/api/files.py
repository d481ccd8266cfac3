"""Files over HTTP: a job's video (with Range requests), its sidecar record and previews, and uploads.

Every file served is resolved inside the folder it must come from (``safe_files``) — the path comes
from the job's record, never from the request. Uploads are read with a size limit, checked by content
(``backend.media.uploads``) and stored under a name made from their hash; the client's name is only shown.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

from backend.api.jobs import find_status, generator_of
from backend.api.schemas import UploadView
from backend.errors import LutError, UnsafePath, UploadError
from backend.media import luts, uploads
from backend.media.safe_files import read_inside, resolve_inside

router = APIRouter(tags=["files"])
UPLOAD_KINDS = ("image", "video", "lut")
MAX_RECORD_BYTES = 16 * 1024 * 1024


def upload_limit(kind: str) -> int:
    return luts.MAX_FILE_BYTES if kind == "lut" else uploads.MAX_UPLOAD_BYTES


def _served(path: str | None, folder: Path, what: str) -> Path:
    if not path:
        raise HTTPException(404, f"this job has no {what} (yet)")
    try:
        resolved = resolve_inside(path, folder)
    except UnsafePath:
        raise HTTPException(404, f"the {what} is no longer there") from None
    if not resolved.is_file():
        raise HTTPException(404, f"the {what} is no longer there")
    return resolved


@router.get("/v1/jobs/{job_id}/video", summary="The finished video (supports Range requests)",
            response_class=FileResponse)
async def video(job_id: str, request: Request) -> FileResponse:
    generator = generator_of(request)
    status = await run_in_threadpool(find_status, generator, job_id)
    path = _served(status.output, generator.paths.outputs, "video")
    return FileResponse(path, media_type="video/mp4", filename=path.name, content_disposition_type="inline")


@router.get("/v1/jobs/{job_id}/record", summary="The job's sidecar record (JobRecord.to_dict())")
async def record(job_id: str, request: Request) -> JSONResponse:
    generator = generator_of(request)
    status = await run_in_threadpool(find_status, generator, job_id)
    if status.record is None:
        raise HTTPException(404, "this job has no record yet (its first stage has not finished)")
    if status.sidecar:  # the delivered sidecar is the record as written next to the video
        try:
            data = read_inside(status.sidecar, generator.paths.outputs, max_bytes=MAX_RECORD_BYTES)
            return JSONResponse(content=json.loads(data))
        except (UnsafePath, ValueError):
            pass
    return JSONResponse(content=status.record.to_dict())


@router.get("/v1/jobs/{job_id}/previews/{index}", summary="A keyframe preview image")
async def preview(job_id: str, index: int, request: Request) -> FileResponse:
    generator = generator_of(request)
    status = await run_in_threadpool(find_status, generator, job_id)
    if not 0 <= index < len(status.previews):
        raise HTTPException(404, f"no preview {index}")
    return FileResponse(_served(status.previews[index], generator.paths.state, "preview"))


@router.post("/v1/uploads/{kind}", status_code=201, response_model=UploadView, tags=["uploads"],
             summary="Upload an image, video or .cube LUT (the raw bytes as the request body)")
async def upload(kind: str, request: Request, name: str = "upload") -> UploadView:
    if kind not in UPLOAD_KINDS:
        raise HTTPException(404, f"uploads are one of: {', '.join(UPLOAD_KINDS)}")
    limit = upload_limit(kind)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the file is over the {limit // 2**20} MiB limit for a {kind}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the file is over the {limit // 2**20} MiB limit for a {kind}")
        chunks.append(chunk)
    data = b"".join(chunks)
    store = {"image": uploads.store_image, "video": uploads.store_video, "lut": uploads.store_lut}[kind]
    try:
        stored = await run_in_threadpool(store, data, name, generator_of(request).paths.uploads)
    except (UploadError, LutError) as exc:
        raise HTTPException(422, str(exc)) from None
    return UploadView(kind=kind, path=str(stored.path), name=stored.display_name, summary=stored.summary,
                      bytes=len(data))

"""``/v1/models`` and ``/v1/system``: what the studio can run and how the machine and queue stand."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

import backend
from backend.api.jobs import generator_of
from backend.models import store
from backend.models.registry import MODEL_SETS, MODELS

router = APIRouter(prefix="/v1", tags=["system"])


@router.get("/models", summary="Model presets: status on disk, size, licence")
async def models(request: Request) -> dict:
    root = generator_of(request).paths.models

    def listing() -> list[dict]:
        rows = []
        for key, ref in MODELS.items():
            found = store.status(ref, root)
            rows.append({"key": key, "label": ref.label, "state": found.state, "ready": found.ready,
                         "size_gb": ref.size_gb, "licence": ref.licence, "gated": ref.gated,
                         "tiny": ref.is_tiny, "hub": ref.hub_url})
        return rows

    return {"models": await run_in_threadpool(listing), "model_sets": MODEL_SETS}


@router.get("/system", summary="Version, hardware, worker and queue")
async def system(request: Request) -> dict:
    generator = generator_of(request)
    queue = await run_in_threadpool(generator.queue)
    return {
        "version": backend.__version__,
        "hardware": generator.hardware.to_dict(),
        "worker": "this process" if generator.has_worker else "another studio process (or none yet)",
        "queue": {"running": sum(s.state == "running" for s in queue), "queued": sum(s.state == "queued" for s in queue)},
        "resident_models": generator.memory.resident(),
    }

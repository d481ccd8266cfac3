"""The FastAPI application: routes, error shapes, and the access checks around them.

``create_app(generator, policy)`` is a thin layer over one ``VideoGenerator``. Errors keep FastAPI's
shape (``{"detail": ...}``): a type error in the body is FastAPI's 422 naming the field, and our
``SpecError`` (a range, a missing input) is a 422 with its field and message in the same form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

import backend
from backend.api import events, files, jobs, storyboard, system
from backend.api.security import AccessMiddleware, AccessPolicy
from backend.errors import SpecError, StudioError

if TYPE_CHECKING:  # pragma: no cover
    from backend.jobs.orchestrator import VideoGenerator

DESCRIPTION = """A thin HTTP layer over the studio's job queue: the same jobs, files and worker as the
Streamlit studio and the CLI. See docs/API.md for a client example."""


def create_app(generator: "VideoGenerator", policy: AccessPolicy | None = None) -> FastAPI:
    app = FastAPI(title="Local AI video studio", version=backend.__version__, description=DESCRIPTION,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.generator = generator
    for router in (jobs.router, storyboard.router, events.router, files.router, system.router):
        app.include_router(router)
    app.add_exception_handler(SpecError, _spec_error)
    app.add_exception_handler(StudioError, _studio_error)
    policy = policy or AccessPolicy()
    if policy.cors_origins:  # closed unless configured: no CORS headers at all by default
        app.add_middleware(CORSMiddleware, allow_origins=list(policy.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["authorization", "content-type"])
    app.add_middleware(AccessMiddleware, policy=policy)  # added last = runs first
    return app


async def _spec_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SpecError)
    loc = ["body", *exc.field.split(".")]
    return JSONResponse(status_code=422, content={"detail": [{"loc": loc, "msg": exc.message, "type": "spec_error"}]})


async def _studio_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=409, content={"detail": str(exc)})

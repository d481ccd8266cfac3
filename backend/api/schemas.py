"""The request and response shapes of the API, derived from the studio's own dataclasses.

The request body of ``POST /v1/jobs`` is a pydantic model built from ``JobSpec``'s fields, so it never
drifts from the spec: FastAPI checks types (422 naming the field) and OpenAPI documents every setting;
``JobSpec.validate`` and admission then check ranges and inputs (our ``SpecError``, also 422).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from backend.spec import FinishOptions, JobSpec

STRICT = ConfigDict(extra="forbid", strict=True)


def _model_of(cls: type, name: str, nested: dict[str, type] | None = None) -> type[BaseModel]:
    hints = typing.get_type_hints(cls)
    definitions: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        kind = (nested or {}).get(item.name, hints[item.name])
        if item.default is not dataclasses.MISSING:
            definitions[item.name] = (kind, item.default)
        elif item.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            definitions[item.name] = (kind | None, None)
        else:
            definitions[item.name] = (kind, ...)
    return create_model(name, __config__=STRICT, __doc__=cls.__doc__, **definitions)


FinishBody = _model_of(FinishOptions, "FinishOptionsBody")
JobSpecBody = _model_of(JobSpec, "JobSpecBody", {"finish": FinishBody})


def spec_dict(body: BaseModel) -> dict[str, Any]:
    """The fields the client sent, as the plain dict ``JobSpec.from_dict`` reads."""
    return body.model_dump(exclude_unset=True)


class JobView(BaseModel):
    """One job as the API shows it (files as links, never server paths)."""

    id: str
    state: str
    stage: str
    fraction: float
    message: str
    step: int | None = None
    total_steps: int | None = None
    eta_seconds: float | None = None
    error: str | None = None
    created: float
    started: float | None = None
    finished: float | None = None
    spec: dict[str, Any]
    video_name: str | None = None
    links: dict[str, str]
    previews: list[str] = []


class UploadView(BaseModel):
    kind: str
    path: str  # where the server stored it: put this in the spec's image / video / finish.lut
    name: str  # the client's name, cleaned, for display only
    summary: str
    bytes: int

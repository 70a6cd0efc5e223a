"""The model registry over HTTP: register a manifest, list and read models.

A manifest is refused at registration (422 naming the field) unless it can always be
read back and sent to Temporal (``registry/limits.py``); a stored row that still cannot
be read is left out of the list, named in the ``X-Fairlane-Unreadable-Models`` header
and the log, and answers 409 on its own.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from pydantic import BaseModel

from api.incidents import SLUG
from api.security import READERS, require
from api.tokens import Principal, Role
from contracts.model import ModelManifest
from registry.limits import ManifestRejected
from registry.service import ModelRegistry

router = APIRouter(prefix="/v1/models", tags=["models"])
log = structlog.get_logger(__name__)
UNREADABLE_HEADER = "X-Fairlane-Unreadable-Models"


class Registered(BaseModel):
    id: str
    revision: int


def _registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Registered)
def register_model(
    manifest: ModelManifest,
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.ADMIN, Role.INCIDENT_COMMANDER))],
) -> Registered:
    try:
        revision = _registry(request).register(manifest, principal.name)
    except ManifestRejected as error:
        problem = {"loc": ["body", *error.loc], "msg": error.msg, "type": error.type}
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem]) from error
    return Registered(id=manifest.id, revision=revision)


@router.get("", response_model=list[ModelManifest])
def list_models(
    request: Request, response: Response, _: Annotated[Principal, Depends(require(*READERS))]
) -> list[ModelManifest]:
    readable, unreadable = _registry(request).manifests()
    if unreadable:
        for error in unreadable:
            log.error("unreadable stored manifest", model=error.model_id, error=str(error))
        response.headers[UNREADABLE_HEADER] = ",".join(e.model_id for e in unreadable)
    return readable


@router.get("/{model_id}", response_model=ModelManifest)
def show_model(
    model_id: Annotated[str, Path(pattern=SLUG)],
    request: Request,
    _: Annotated[Principal, Depends(require(*READERS))],
) -> ModelManifest:
    manifest = _registry(request).get(model_id)
    if manifest is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model {model_id!r} is not registered")
    return manifest

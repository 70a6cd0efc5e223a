"""The model registry over HTTP: register a manifest, list and read models."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel

from api.incidents import SLUG
from api.security import READERS, require
from api.tokens import Principal, Role
from contracts.model import ModelManifest
from registry.service import ModelRegistry

router = APIRouter(prefix="/v1/models", tags=["models"])


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
    revision = _registry(request).register(manifest, principal.name)
    return Registered(id=manifest.id, revision=revision)


@router.get("", response_model=list[ModelManifest])
def list_models(
    request: Request, _: Annotated[Principal, Depends(require(*READERS))]
) -> list[ModelManifest]:
    return [
        ModelManifest.model_validate_json(row.manifest_json) for row in _registry(request).list()
    ]


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

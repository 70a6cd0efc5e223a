"""Callbacks from external training pipelines: they complete the waiting `remediate` step."""

from __future__ import annotations

import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.external_training import task_token_from
from api.incidents import INCIDENT_ID, raise_not_found
from api.security import require
from api.temporal import temporal_client
from api.tokens import Principal, Role
from contracts.analysis import Candidate, TrainingResult
from contracts.incident import QUERY_STATE, IncidentState
from contracts.model import Lineage, ModelVersion
from registry.service import ModelRegistry

router = APIRouter(prefix="/v1/incidents", tags=["training"])
CALLBACK = "/{incident_id}/training-callbacks/{token}"


class TrainingFailure(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)


async def _model_of(client: Client, incident_id: str) -> str:
    try:
        state: IncidentState = await client.get_workflow_handle(incident_id).query(
            QUERY_STATE, result_type=IncidentState
        )
    except RPCError as error:
        raise_not_found(error, incident_id)
        raise
    return state.model


def _token(encoded: str) -> bytes:
    try:
        return task_token_from(encoded)
    except (binascii.Error, ValueError) as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "malformed callback token"
        ) from error


@router.post(CALLBACK, status_code=status.HTTP_202_ACCEPTED)
async def training_succeeded(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    token: str,
    result: TrainingResult,
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.TRAINING_PIPELINE))],
) -> dict[str, str]:
    client = await temporal_client(request)
    registry: ModelRegistry = request.app.state.registry
    model = await _model_of(client, incident_id)
    manifest = registry.get(model)
    assert manifest is not None, "an incident's model stays registered"
    version = ModelVersion(
        version=result.version,
        artifact=result.artifact,
        lineage=Lineage(
            parent=manifest.primary_version,
            strategy=result.strategy,
            code_version=f"external:{principal.name}",
            incident_id=incident_id,
        ),
    )
    try:
        registry.add_version(model, version, principal.name)
    except ValueError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    candidate = Candidate(
        report=None,
        version=result.version,
        artifact=result.artifact,
        strategy=result.strategy,
        headline=f"{result.version} trained externally by {principal.name}: {result.summary}",
    )
    await _complete(client, _token(token), candidate)
    return {"status": "accepted", "version": result.version}


@router.post(CALLBACK + "/failure", status_code=status.HTTP_202_ACCEPTED)
async def training_failed(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    token: str,
    failure: TrainingFailure,
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.TRAINING_PIPELINE))],
) -> dict[str, str]:
    client = await temporal_client(request)
    await _model_of(client, incident_id)
    handle = client.get_async_activity_handle(task_token=_token(token))
    try:
        await handle.fail(
            ApplicationError(
                f"training pipeline {principal.name} failed: {failure.reason}",
                type="ExternalTrainingFailed",
                non_retryable=True,
            )
        )
    except RPCError as error:
        raise_gone(error)
        raise
    return {"status": "recorded"}


async def _complete(client: Client, token: bytes, candidate: Candidate) -> None:
    try:
        await client.get_async_activity_handle(task_token=token).complete(candidate)
    except RPCError as error:
        raise_gone(error)
        raise


def raise_gone(error: RPCError) -> None:
    """410 for a task token Temporal no longer awaits; other errors are the caller's to
    raise as they are (``api/errors.py`` answers them)."""
    if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
        raise HTTPException(
            status.HTTP_410_GONE, "the training job is no longer awaited (timed out or answered)"
        ) from error

"""Callbacks from external training pipelines: they complete the waiting `remediate` step.

The callback secret is checked before anything else (``incidents/training_callbacks.py``):
a secret nobody issued, or one issued for another incident, gets 404 and nothing is
registered or completed. Only then is the candidate registered (its artifact a name in
the artifacts directory, pinned by sha256: 422 naming the field otherwise) and the
step completed with the task token the secret was issued for.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import RegistryDep, TemporalDep, TrainingCallbacksDep
from api.incidents import INCIDENT_ID, query_state
from api.security import require
from api.tokens import Principal, Role
from contracts.analysis import Candidate, TrainingResult
from contracts.model import Lineage, ModelVersion
from incidents.training_callbacks import Binding, TrainingCallbacks
from registry.limits import ManifestRejected

router = APIRouter(prefix="/v1/incidents", tags=["training"])
CALLBACK = "/{incident_id}/training-callbacks/{token}"
Token = Annotated[str, Path(min_length=16, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]


class TrainingFailure(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)


def _bound(callbacks: TrainingCallbacks, token: str, incident_id: str) -> Binding:
    """The job this token was issued for under this incident; 404 otherwise, 410 if answered."""
    binding = callbacks.redeem(token, incident_id)
    if binding is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no training job of incident {incident_id} has this callback token",
        )
    if binding.answered:
        raise HTTPException(status.HTTP_410_GONE, "this training job was already answered")
    return binding


@router.post(CALLBACK, status_code=status.HTTP_202_ACCEPTED)
async def training_succeeded(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    token: Token,
    result: TrainingResult,
    callbacks: TrainingCallbacksDep,
    temporal: TemporalDep,
    registry: RegistryDep,
    principal: Annotated[Principal, Depends(require(Role.TRAINING_PIPELINE))],
) -> dict[str, str]:
    binding = _bound(callbacks, token, incident_id)
    client = await temporal.client()
    model = (await query_state(client, incident_id)).model
    manifest = registry.get(model)
    assert manifest is not None, "an incident's model stays registered"
    version = ModelVersion(
        version=result.version,
        artifact=result.artifact,
        sha256=result.sha256,
        lineage=Lineage(
            parent=manifest.primary_version,
            strategy=result.strategy,
            code_version=f"external:{principal.name}",
            incident_id=incident_id,
        ),
    )
    try:
        registry.add_version(model, version, principal.name)
    except ManifestRejected as error:
        # the version's field as the pipeline sent it: body.artifact / body.sha256
        problem = {"loc": ["body", *error.loc[2:]], "msg": error.msg, "type": error.type}
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem]) from error
    except ValueError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    registered = registry.get(model)
    assert registered is not None
    candidate = Candidate(
        report=None,
        version=result.version,
        artifact=result.artifact,
        sha256=registered.version(result.version).sha256,
        strategy=result.strategy,
        headline=f"{result.version} trained externally by {principal.name}: {result.summary}",
    )
    await _complete(client, binding.task_token, candidate)
    callbacks.answered(token)
    return {"status": "accepted", "version": result.version, "step": binding.step}


@router.post(CALLBACK + "/failure", status_code=status.HTTP_202_ACCEPTED)
async def training_failed(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    token: Token,
    failure: TrainingFailure,
    callbacks: TrainingCallbacksDep,
    temporal: TemporalDep,
    principal: Annotated[Principal, Depends(require(Role.TRAINING_PIPELINE))],
) -> dict[str, str]:
    binding = _bound(callbacks, token, incident_id)
    client = await temporal.client()
    handle = client.get_async_activity_handle(task_token=binding.task_token)
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
    callbacks.answered(token)
    return {"status": "recorded", "step": binding.step}


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

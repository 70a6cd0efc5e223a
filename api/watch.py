"""A model's watch over HTTP: arm and disarm its drift monitor, read its state and trail.

Arming goes by signal-with-start (the watch may not be running yet); disarming and
reading need a running watch, so they answer 404 when there is none rather than
start one just to stop it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Commander, Reader, RegistryDep, SettingsDep, TemporalDep, TrailDep
from api.incidents import SLUG
from api.security import require
from api.temporal import TemporalConnection
from api.tokens import Principal
from api.trail import TRAIL_READERS
from audit import IncidentTrailExport
from contracts.model import ModelManifest
from contracts.monitoring import MonitoringPolicy
from contracts.watch import (
    QUERY_WATCH,
    SIGNAL_ARM_MONITOR,
    SIGNAL_DISARM_MONITOR,
    MonitorArm,
    MonitorDisarm,
    WatchState,
    watch_workflow_id,
)
from incidents.watch import WatchQueues, signal_watch
from registry.service import ModelRegistry

router = APIRouter(prefix="/v1/models/{model_id}", tags=["monitoring"])
ModelId = Annotated[str, Path(pattern=SLUG)]


class ArmRequest(BaseModel):
    policy: MonitoringPolicy | None = Field(
        default=None, description="the bands and cadence; without one, the manifest's"
    )
    reason: str = Field(default="", max_length=2000)


class DisarmRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class WatchReceipt(BaseModel):
    watch: str
    policy: MonitoringPolicy | None = None


def _manifest(registry: ModelRegistry, model_id: str) -> ModelManifest:
    manifest = registry.get(model_id)
    if manifest is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model {model_id!r} is not registered")
    return manifest


async def _watch(temporal: TemporalConnection, model_id: str) -> WorkflowHandle[Any, Any]:
    client = await temporal.client()
    return client.get_workflow_handle(watch_workflow_id(model_id))


def _raise_no_watch(error: RPCError, model_id: str) -> None:
    """404 when the model has no running watch; other errors are the caller's to raise
    as they are (``api/errors.py`` answers them)."""
    if error.status == RPCStatusCode.NOT_FOUND:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"model {model_id!r} has no running watch"
        ) from error


@router.post("/monitor", status_code=status.HTTP_202_ACCEPTED, response_model=WatchReceipt)
async def arm_monitor(
    model_id: ModelId,
    body: ArmRequest,
    settings: SettingsDep,
    registry: RegistryDep,
    temporal: TemporalDep,
    principal: Commander,
) -> WatchReceipt:
    """Start (or re-configure) the model's drift monitor."""
    manifest = _manifest(registry, model_id)
    policy = body.policy or manifest.monitoring
    arm = MonitorArm(actor=principal.name, reason=body.reason, policy=policy)
    client = await temporal.client()
    watch = await signal_watch(client, WatchQueues.of(settings), manifest, SIGNAL_ARM_MONITOR, arm)
    return WatchReceipt(watch=watch, policy=policy)


@router.post("/monitor/disarm", status_code=status.HTTP_202_ACCEPTED, response_model=WatchReceipt)
async def disarm_monitor(
    model_id: ModelId, body: DisarmRequest, temporal: TemporalDep, principal: Commander
) -> WatchReceipt:
    """Stop the drift monitor; the watch stays, for alerts."""
    handle = await _watch(temporal, model_id)
    try:
        await handle.signal(
            SIGNAL_DISARM_MONITOR, MonitorDisarm(actor=principal.name, reason=body.reason)
        )
    except RPCError as error:
        _raise_no_watch(error, model_id)
        raise
    return WatchReceipt(watch=handle.id)


@router.get("/watch", response_model=WatchState)
async def show_watch(model_id: ModelId, temporal: TemporalDep, _: Reader) -> WatchState:
    """The watch's state: monitor policy, recent evaluations, held alerts, incidents."""
    handle = await _watch(temporal, model_id)
    try:
        state: WatchState = await handle.query(QUERY_WATCH, result_type=WatchState)
    except RPCError as error:
        _raise_no_watch(error, model_id)
        raise
    return state


@router.get("/watch/trail", response_model=IncidentTrailExport)
def watch_trail(
    model_id: ModelId,
    trail: TrailDep,
    _: Annotated[Principal, Depends(require(*TRAIL_READERS))],
) -> Any:
    """The model's own records: its manifest's registration and changes, and its watch's
    arming, evaluations, containments and alerts with no incident."""
    export = trail.export(watch_workflow_id(model_id))
    if not export.records:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no audit records for {model_id!r}'s watch")
    return export

"""Incidents: open, list, show, and stakeholder sign-offs (Temporal updates)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, Field
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Commander, IncidentsDep, Reader, SettingsDep, SignerDep, TemporalDep
from api.security import require
from api.temporal import TemporalConnection
from api.tokens import APPROVER_ROLES, Principal, Role
from config import Settings
from contracts.canary import QUERY_CANARY_PROGRESS, RampStepProgress
from contracts.decisions import SIGNOFF, DecisionKind, SignableDecision, current_step
from contracts.incident import (
    QUERY_STATE,
    SA_MODEL,
    SA_PHASE,
    SA_PLAYBOOK,
    SA_SEVERITY,
    UPDATE_SIGNOFF,
    WORKFLOW_TYPE,
    IncidentState,
    Phase,
    SignoffDecision,
    SignoffReceipt,
)
from contracts.severity import Severity
from incidents.decisions import DecisionSigner
from incidents.service import UnknownModelError
from incidents.start import new_incident_id
from playbooks.loader import PlaybookError

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])
T = TypeVar("T")

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
INCIDENT_ID = r"^inc-[a-z0-9-]{1,80}$"


class ReasonRequest(BaseModel):
    """A commander's control (canary, stand-down): only the why, kept in the trail."""

    reason: str = Field(min_length=1, max_length=2000, description="why: kept in the trail")


class OpenIncident(BaseModel):
    model: str = Field(pattern=SLUG, description="id of a registered model")
    playbook: str = Field(default="drift-rollback", pattern=SLUG)
    severity: Severity = Severity.SEV2
    summary: str = Field(min_length=1, max_length=4000)


class IncidentOpened(BaseModel):
    incident_id: str
    ui_url: str
    state_url: str


class IncidentSummary(BaseModel):
    incident_id: str
    model: str | None
    severity: str | None
    phase: str | None
    playbook: str | None
    status: str
    started_at: datetime | None


class SignoffRequest(BaseModel):
    role: Role
    decision: Literal["approve", "reject"]
    comment: str = Field(default="", max_length=4000)
    assessment_digest: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="digest of the impact assessment read, when the sign-off binds to one",
    )


def ui_url(settings: Settings, incident_id: str) -> str:
    return (
        f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{incident_id}"
    )


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=IncidentOpened)
async def open_incident(
    body: OpenIncident, settings: SettingsDep, incidents: IncidentsDep, principal: Commander
) -> IncidentOpened:
    now = datetime.now(UTC)
    try:
        incident = await incidents.open(
            incident_id=new_incident_id(now),
            model=body.model,
            playbook=body.playbook,
            severity=body.severity,
            summary=body.summary,
            commander=principal.name,
            opened_at=now,
        )
    except UnknownModelError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    except PlaybookError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    incident_id = incident.incident_id
    return IncidentOpened(
        incident_id=incident_id,
        ui_url=ui_url(settings, incident_id),
        state_url=f"/v1/incidents/{incident_id}",
    )


@router.get("", response_model=list[IncidentSummary])
async def list_incidents(
    temporal: TemporalDep,
    _: Reader,
    model: Annotated[str | None, Query(pattern=SLUG)] = None,
    phase: Phase | None = None,
    severity: Severity | None = None,
    playbook: Annotated[str | None, Query(pattern=SLUG)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[IncidentSummary]:
    # Every value below is a slug or an enum member, so the query cannot be injected.
    clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'"]
    for key, value in (
        (SA_MODEL, model),
        (SA_PHASE, phase),
        (SA_SEVERITY, severity),
        (SA_PLAYBOOK, playbook),
    ):
        if value is not None:
            clauses.append(f"{key.name} = '{value}'")
    found: list[IncidentSummary] = []
    client = await temporal.client()
    async for execution in client.list_workflows(" AND ".join(clauses), limit=limit):
        attributes = execution.typed_search_attributes
        found.append(
            IncidentSummary(
                incident_id=execution.id,
                model=attributes.get(SA_MODEL),
                severity=attributes.get(SA_SEVERITY),
                phase=attributes.get(SA_PHASE),
                playbook=attributes.get(SA_PLAYBOOK),
                status=execution.status.name if execution.status else "UNKNOWN",
                started_at=execution.start_time,
            )
        )
    return found


@router.get("/{incident_id}", response_model=IncidentState)
async def show_incident(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)], temporal: TemporalDep, _: Reader
) -> IncidentState:
    client = await temporal.client()
    state = await query_state(client, incident_id)
    if state.canary is not None and state.canary.step_workflow_id is not None:
        state.canary.live = await _ramp_progress(client, state.canary.step_workflow_id)
    return state


async def _ramp_progress(client: Client, workflow_id: str) -> RampStepProgress | None:
    """The running ramp step's own progress (bake clock, latest analysis), if it still runs.

    The incident cannot query its child from inside a query, so the API asks both; a
    step that finished between the two queries simply has no live progress.
    """
    try:
        progress: RampStepProgress = await client.get_workflow_handle(workflow_id).query(
            QUERY_CANARY_PROGRESS, result_type=RampStepProgress
        )
    except (RPCError, WorkflowQueryFailedError):
        return None
    return progress


@router.post("/{incident_id}/signoffs", response_model=SignoffReceipt)
async def sign_off(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    body: SignoffRequest,
    temporal: TemporalDep,
    signer: SignerDep,
    principal: Annotated[Principal, Depends(require(*APPROVER_ROLES))],
) -> SignoffReceipt:
    if body.role not in principal.roles:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{principal.name} does not hold the role {body.role.value!r} and cannot decide for it",
        )
    decision = SignoffDecision(
        principal=principal.name,
        principal_roles=[r.value for r in principal.roles],
        role=body.role.value,
        decision=body.decision,
        comment=body.comment,
        assessment_digest=body.assessment_digest,
    )
    receipt: SignoffReceipt = await execute_update(
        temporal, signer, incident_id, UPDATE_SIGNOFF, SIGNOFF, decision, SignoffReceipt
    )
    return receipt


async def execute_update(
    temporal: TemporalConnection,
    signer: DecisionSigner,
    incident_id: str,
    update: str,
    kind: DecisionKind,
    decision: SignableDecision,
    result_type: type[T],
) -> T:
    """A human decision, signed by the API for the incident's open step, delivered to the
    incident: refusals are 409 with the incident's reason."""
    handle = (await temporal.client()).get_workflow_handle(incident_id)
    try:
        state = await _state_of(handle)
    except WorkflowQueryFailedError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, f"incident {incident_id}: {error}") from error
    argument = signer.sign(kind, decision, incident_id, current_step(kind, state))
    try:
        result: T = await handle.execute_update(update, argument, result_type=result_type)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        reason = cause.message if isinstance(cause, ApplicationError) else "refused by the incident"
        raise HTTPException(status.HTTP_409_CONFLICT, reason) from error
    except RPCError as error:
        await refuse_missing_or_closed(handle, error)
        raise
    return result


async def query_state(client: Client, incident_id: str) -> IncidentState:
    """The incident's state, as its workflow answers; 404 if there is no such incident."""
    return await _state_of(client.get_workflow_handle(incident_id))


async def _state_of(handle: WorkflowHandle[Any, Any]) -> IncidentState:
    try:
        state: IncidentState = await handle.query(QUERY_STATE, result_type=IncidentState)
    except RPCError as error:
        await refuse_missing_or_closed(handle, error)
        raise
    return state


async def refuse_missing_or_closed(handle: WorkflowHandle[Any, Any], error: RPCError) -> None:
    """404 for an incident Temporal does not know, 409 for one whose workflow has closed.

    Temporal answers ``NOT_FOUND`` to both (an update or signal to a closed workflow is
    "not found" too), so the workflow's own status decides, never the message's text.
    Any other error is the caller's to raise as it is: ``api/errors.py`` answers it
    (503 while Temporal is unavailable).
    """
    if error.status != RPCStatusCode.NOT_FOUND:
        return
    try:
        described = await handle.describe()
    except RPCError as lookup:
        if lookup.status != RPCStatusCode.NOT_FOUND:
            raise
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {handle.id!r}") from error
    if described.status is not WorkflowExecutionStatus.RUNNING:
        raise HTTPException(status.HTTP_409_CONFLICT, f"incident {handle.id} is closed") from error

"""Canary control: pause, resume, promote (this step or all the way), abort.

Incident commanders only. The API checks the role, the incident's update validator
checks it again together with the ramp's state (a pause of a paused ramp, a control
between steps), and the incident writes who did what and why to the audit trail
before the running ramp step sees the control.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from api.deps import SignerDep, TemporalDep
from api.incidents import INCIDENT_ID, ReasonRequest, execute_update
from api.security import require
from api.tokens import Principal, Role
from contracts.canary import (
    CONTROLLER_ROLE,
    UPDATE_CANARY_CONTROL,
    CanaryControl,
    ControlAction,
    ControlReceipt,
)
from contracts.decisions import CANARY_CONTROL

router = APIRouter(prefix="/v1/incidents", tags=["canary"])


@router.post("/{incident_id}/canary/{action}", response_model=ControlReceipt)
async def control_canary(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    action: ControlAction,
    body: ReasonRequest,
    temporal: TemporalDep,
    signer: SignerDep,
    principal: Annotated[Principal, Depends(require(Role(CONTROLLER_ROLE)))],
) -> ControlReceipt:
    control = CanaryControl(
        principal=principal.name,
        principal_roles=[r.value for r in principal.roles],
        action=action,
        reason=body.reason,
    )
    receipt: ControlReceipt = await execute_update(
        temporal,
        signer,
        incident_id,
        UPDATE_CANARY_CONTROL,
        CANARY_CONTROL,
        control,
        ControlReceipt,
    )
    return receipt

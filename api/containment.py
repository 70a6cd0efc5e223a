"""Standing containment down: the one way to stop Fairlane trying to contain a model.

Containment never gives up on its own (see :mod:`workflows.containment`). When a
router stays unreachable and an incident commander decides that trying is pointless
(the model was retired, another team contained it by hand), they say so here, with a
reason. The API checks the role; the incident's update validator checks it again and
that a containment is in progress; the incident writes who and why to the trail.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from api.deps import SignerDep, TemporalDep
from api.incidents import INCIDENT_ID, ReasonRequest, execute_update
from api.security import require
from api.tokens import Principal, Role
from contracts.containment import (
    STAND_DOWN_ROLE,
    UPDATE_STAND_DOWN,
    StandDown,
    StandDownReceipt,
)
from contracts.decisions import STAND_DOWN

router = APIRouter(prefix="/v1/incidents", tags=["containment"])


@router.post("/{incident_id}/containment/stand-down", response_model=StandDownReceipt)
async def stand_down_containment(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    body: ReasonRequest,
    temporal: TemporalDep,
    signer: SignerDep,
    principal: Annotated[Principal, Depends(require(Role(STAND_DOWN_ROLE)))],
) -> StandDownReceipt:
    order = StandDown(
        principal=principal.name,
        principal_roles=[r.value for r in principal.roles],
        reason=body.reason,
    )
    receipt: StandDownReceipt = await execute_update(
        temporal, signer, incident_id, UPDATE_STAND_DOWN, STAND_DOWN, order, StandDownReceipt
    )
    return receipt

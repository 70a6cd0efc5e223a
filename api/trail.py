"""The audit trail over HTTP: an incident's records (with what proves them offline: the
linking records and signed checkpoints), and verification against the checkpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status

from api.deps import AuditorOrAdmin, TrailDep
from api.incidents import INCIDENT_ID
from api.security import require
from api.tokens import Principal, Role
from audit import IncidentTrailExport, VerifyReport

router = APIRouter(prefix="/v1", tags=["audit"])
TRAIL_READERS = (Role.AUDITOR, Role.INCIDENT_COMMANDER, Role.ADMIN)


@router.get("/incidents/{incident_id}/trail", response_model=IncidentTrailExport)
def incident_trail(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    trail: TrailDep,
    _: Annotated[Principal, Depends(require(*TRAIL_READERS))],
) -> Any:
    export = trail.export(incident_id, proof=True)
    if not export.records:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no audit records for {incident_id!r}")
    return export


@router.get("/trail/verify", response_model=VerifyReport)
def verify_trail(trail: TrailDep, _: AuditorOrAdmin) -> Any:
    return trail.verify()

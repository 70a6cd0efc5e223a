"""The Algorithmic Impact Assessment of an incident, as Markdown or HTML.

Served only if the file still hashes to the digest the incident recorded, so what an
approver reads is exactly what their sign-off binds to.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import Response
from temporalio.service import RPCError

from api.incidents import INCIDENT_ID, raise_not_found
from api.security import READERS, require
from api.temporal import temporal_client
from api.tokens import Principal
from contracts.incident import QUERY_STATE, IncidentState

router = APIRouter(prefix="/v1/incidents", tags=["reports"])
MEDIA = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}


@router.get("/{incident_id}/report", response_class=Response)
async def impact_assessment(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    request: Request,
    _: Annotated[Principal, Depends(require(*READERS))],
    format: Annotated[Literal["md", "html"], Query()] = "md",
) -> Response:
    client = await temporal_client(request)
    try:
        state: IncidentState = await client.get_workflow_handle(incident_id).query(
            QUERY_STATE, result_type=IncidentState
        )
    except RPCError as error:
        raise_not_found(error, incident_id)
        raise
    assessment = state.findings.assessment
    if assessment is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"incident {incident_id} has no impact assessment yet"
        )
    markdown = await asyncio.to_thread(FilePath(assessment.markdown).read_bytes)
    if "sha256:" + hashlib.sha256(markdown).hexdigest() != assessment.digest:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the assessment file no longer matches {assessment.digest}: it was altered",
        )
    if format == "html":
        body = await asyncio.to_thread(FilePath(assessment.html).read_bytes)
    else:
        body = markdown
    return Response(
        content=body, media_type=MEDIA[format], headers={"X-Assessment-Digest": assessment.digest}
    )

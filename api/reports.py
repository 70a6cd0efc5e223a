"""The Algorithmic Impact Assessment of an incident, as Markdown or HTML.

Served only if the file served still hashes to the digest the incident recorded for
it, so what an approver reads is exactly what was written: the Markdown against
``digest`` (what sign-offs bind to), the HTML rendering against ``html_digest``. An
altered file is refused with 409, a removed one answers 410; neither is served.
``X-Assessment-Digest`` is always the Markdown's digest, ``X-Content-Digest`` the
digest of the bytes in this response.
"""

from __future__ import annotations

import asyncio
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import Response

from analysis.reports import sha256_ref
from api.deps import Reader, TemporalDep
from api.incidents import INCIDENT_ID, query_state
from contracts.analysis import Assessment

router = APIRouter(prefix="/v1/incidents", tags=["reports"])
MEDIA = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}


@router.get("/{incident_id}/report", response_class=Response)
async def impact_assessment(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    temporal: TemporalDep,
    _: Reader,
    format: Annotated[Literal["md", "html"], Query()] = "md",
) -> Response:
    state = await query_state(await temporal.client(), incident_id)
    assessment = state.findings.assessment
    if assessment is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"incident {incident_id} has no impact assessment yet"
        )
    path, recorded = _document(assessment, format)
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except (FileNotFoundError, NotADirectoryError) as error:
        raise HTTPException(
            status.HTTP_410_GONE,
            f"the assessment's {format} file {path.name} is gone: it was removed after it "
            f"was written (it had {recorded})",
        ) from error
    if sha256_ref(body) != recorded:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the assessment's {format} file {path.name} no longer matches {recorded}: "
            "it was altered, so it is not served",
        )
    headers = {"X-Assessment-Digest": assessment.digest, "X-Content-Digest": recorded}
    return Response(content=body, media_type=MEDIA[format], headers=headers)


def _document(assessment: Assessment, format: str) -> tuple[FilePath, str]:
    """The file to serve and the digest it must have."""
    if format == "md":
        return FilePath(assessment.markdown), assessment.digest
    if assessment.html_digest is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "this assessment was written before HTML digests were recorded, so its HTML "
            "cannot be checked and is not served: read format=md",
        )
    return FilePath(assessment.html), assessment.html_digest

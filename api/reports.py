"""The Algorithmic Impact Assessment of an incident, as Markdown or HTML.

Served only if the file served still hashes to the digest the incident recorded for
it, so what an approver reads is exactly what was written: the Markdown against
``digest`` (what sign-offs bind to), the HTML rendering against ``html_digest``. An
altered file is refused with 409, a removed one answers 410; neither is served.
``X-Assessment-Digest`` is always the Markdown's digest, ``X-Content-Digest`` the
digest of the bytes in this response.

``report.html`` and ``report.pdf`` are the regulator's renderings (reports/): real
tables drawn from the structured findings and the sign-off record as it stands now,
so they are rendered on request, not stored. They are served only while the Markdown
of record and every report they draw on still match their recorded digests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import Response
from pydantic import ValidationError

from analysis.reports import sha256_ref
from api.deps import Reader, TemporalDep
from api.incidents import INCIDENT_ID, query_state
from api.temporal import TemporalConnection
from contracts.analysis import Assessment
from contracts.incident import IncidentState
from reports.assessment_document import assessment_document
from reports.evidence import gather_evidence
from reports.html import render_html
from reports.pdf import render_pdf

router = APIRouter(prefix="/v1/incidents", tags=["reports"])
MEDIA = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}
RENDERED = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}


@router.get("/{incident_id}/report", response_class=Response)
async def impact_assessment(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    temporal: TemporalDep,
    _: Reader,
    format: Annotated[Literal["md", "html"], Query()] = "md",
) -> Response:
    state = await _state_with_assessment(temporal, incident_id)
    assert state.findings.assessment is not None
    assessment = state.findings.assessment
    path, recorded = _document(assessment, format)
    body = await _checked_bytes(path, recorded, format)
    headers = {"X-Assessment-Digest": assessment.digest, "X-Content-Digest": recorded}
    return Response(content=body, media_type=MEDIA[format], headers=headers)


@router.get("/{incident_id}/report.html", response_class=Response)
async def regulator_report_html(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    temporal: TemporalDep,
    _: Reader,
) -> Response:
    """The assessment with real tables and the sign-off record, as HTML."""
    return await _rendering(temporal, incident_id, "html")


@router.get("/{incident_id}/report.pdf", response_class=Response)
async def regulator_report_pdf(
    incident_id: Annotated[str, Path(pattern=INCIDENT_ID)],
    temporal: TemporalDep,
    _: Reader,
) -> Response:
    """The same report as PDF (fpdf2: no browser, no network)."""
    return await _rendering(temporal, incident_id, "pdf")


async def _rendering(
    temporal: TemporalConnection, incident_id: str, kind: Literal["html", "pdf"]
) -> Response:
    state = await _state_with_assessment(temporal, incident_id)
    assessment = state.findings.assessment
    assert assessment is not None
    await _checked_bytes(FilePath(assessment.markdown), assessment.digest, "md")

    def render() -> bytes:
        try:
            evidence = gather_evidence(state)
        except ValidationError as error:  # written by a version whose reports read otherwise
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"a report this assessment draws on cannot be read by this version "
                f"({error.error_count()} problems): read the Markdown (GET .../report)",
            ) from None
        except ValueError as error:  # a report file altered after it was recorded
            raise HTTPException(status.HTTP_409_CONFLICT, f"{error}: not rendered") from None
        except FileNotFoundError as error:
            raise HTTPException(
                status.HTTP_410_GONE, f"a report this assessment draws on is gone: {error.filename}"
            ) from None
        document = assessment_document(evidence, assessment)
        return render_html(document).encode() if kind == "html" else render_pdf(document)

    body = await asyncio.to_thread(render)
    headers = {"X-Assessment-Digest": assessment.digest, "X-Content-Digest": sha256_ref(body)}
    if kind == "pdf":
        headers["Content-Disposition"] = f'inline; filename="{incident_id}-assessment.pdf"'
    return Response(content=body, media_type=RENDERED[kind], headers=headers)


async def _state_with_assessment(temporal: TemporalConnection, incident_id: str) -> IncidentState:
    state = await query_state(await temporal.client(), incident_id)
    if state.findings.assessment is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"incident {incident_id} has no impact assessment yet"
        )
    return state


async def _checked_bytes(path: FilePath, recorded: str, format: str) -> bytes:
    """The file's bytes, if they still hash to ``recorded``: 410 if gone, 409 if altered."""
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
    return body


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

"""Console forms that change things: sign-offs and canary control.

Each form carries the session's CSRF token, passes the API's own role check, and is
delivered by the API's own route function (signed for the incident, checked again by
the incident's update validator). A refusal is shown with its reason and changes
nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from api import canary, incidents, reports
from api.incidents import ReasonRequest, SignoffRequest
from api.security import READERS
from api.tokens import APPROVER_ROLES, Role
from console.access import checked_form, ensure, signed_in, signer, temporal
from console.render import refusal, render
from console.sessions import ConsoleSession
from contracts.canary import CONTROLLER_ROLE, ControlAction, RampStepProgress
from contracts.incident import IncidentState

router = APIRouter(prefix="/console", include_in_schema=False)
Session = Annotated[ConsoleSession, Depends(signed_in)]
IncidentId = Annotated[str, Path(pattern=incidents.INCIDENT_ID)]
PROMOTIONS = (ControlAction.PROMOTE, ControlAction.PROMOTE_FULL)
CONFIRMATION = "confirmed: promoted with no conclusive look"
# The report is shown in a sandboxed frame of the console's own origin: no script, no
# form, no navigation, nothing fetched from elsewhere.
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
    "Cache-Control": "no-store",
}


def _pending_roles(state: IncidentState, session: ConsoleSession) -> list[str]:
    """The roles this person holds that the open sign-off still needs."""
    if state.signoff is None or state.signoff.outcome != "pending":
        return []
    held = {r.value for r in session.principal.roles}
    return [r.role for r in state.signoff.roles if r.outcome == "pending" and r.role in held]


@router.get("/incidents/{incident_id}/signoff")
async def signoff_page(request: Request, session: Session, incident_id: IncidentId) -> Response:
    who = session.principal
    try:
        ensure(who, *READERS)
        state = await incidents.show_incident(incident_id, temporal(request), who)
    except HTTPException as error:
        return refusal(request, session, error)
    assessment = state.findings.assessment
    return render(
        request,
        "signoff.html",
        session,
        state=state,
        assessment=assessment,
        my_roles=_pending_roles(state, session),
        done=request.query_params.get("done") == "1",
    )


@router.get("/incidents/{incident_id}/assessment")
async def assessment_document(
    request: Request, session: Session, incident_id: IncidentId
) -> Response:
    """The assessment's HTML as the API serves it: only while it matches its digest."""
    who = session.principal
    try:
        ensure(who, *READERS)
        served = await reports.impact_assessment(incident_id, temporal(request), who, format="html")
    except HTTPException as error:
        return refusal(request, session, error)
    served.headers.update(REPORT_HEADERS)
    return served


@router.post("/incidents/{incident_id}/signoff")
async def decide(request: Request, session: Session, incident_id: IncidentId) -> Response:
    form = await checked_form(request, session)
    who = session.principal
    try:
        ensure(who, *APPROVER_ROLES)
        try:
            body = SignoffRequest(
                role=form.get("role", ""),
                decision=form.get("decision", ""),
                comment=form.get("comment", ""),
                assessment_digest=form.get("assessment_digest") or None,
            )
        except ValidationError as error:
            raise _unprocessable(error) from error
        state = await incidents.show_incident(incident_id, temporal(request), who)
        bound = state.signoff.assessment_digest if state.signoff else None
        if bound is not None and body.assessment_digest != bound:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "the impact assessment you read has been superseded by a newer one "
                f"({bound}); read the new assessment before deciding. Nothing was recorded.",
            )
        await incidents.sign_off(incident_id, body, temporal(request), signer(request), who)
    except HTTPException as error:
        return refusal(request, session, error)
    return RedirectResponse(
        f"/console/incidents/{incident_id}/signoff?done=1", status.HTTP_303_SEE_OTHER
    )


def _conclusive(progress: RampStepProgress | None) -> bool:
    return progress is not None and (progress.passes + progress.breaches) > 0


@router.post("/incidents/{incident_id}/canary")
async def control(request: Request, session: Session, incident_id: IncidentId) -> Response:
    form = await checked_form(request, session)
    who = session.principal
    try:
        ensure(who, Role(CONTROLLER_ROLE))
        try:
            action = ControlAction(form.get("action", ""))
        except ValueError:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"action: must be one of {', '.join(a.value for a in ControlAction)}",
            ) from None
        try:
            body = ReasonRequest(reason=form.get("reason", ""))
        except ValidationError as error:
            raise _unprocessable(error) from error
        if action in PROMOTIONS:
            state = await incidents.show_incident(incident_id, temporal(request), who)
            progress = state.canary.live if state.canary else None
            if not _conclusive(progress):
                if form.get("confirm_inconclusive") != "yes":
                    return render(
                        request,
                        "confirm_promote.html",
                        session,
                        status_code=status.HTTP_409_CONFLICT,
                        incident_id=incident_id,
                        action=action.value,
                        reason=body.reason,
                        progress=progress,
                    )
                looks = progress.looks if progress else 0
                body = ReasonRequest(reason=f"{body.reason} [{CONFIRMATION} after {looks} looks]")
        await canary.control_canary(
            incident_id, action, body, temporal(request), signer(request), who
        )
    except HTTPException as error:
        return refusal(request, session, error)
    return RedirectResponse(
        f"/console/incidents/{incident_id}?done={action.value}", status.HTTP_303_SEE_OTHER
    )


def _unprocessable(error: ValidationError) -> HTTPException:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "form"
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{field}: {first['msg']}")

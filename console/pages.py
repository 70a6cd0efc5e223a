"""Console pages that read: incidents, one incident, models, the audit trail.

Each page calls the JSON API's own route functions (and the trail, registry and
Temporal client they use) with the session's principal, after the API's own role
check, so a page shows exactly what the API would answer this person.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import Response
from temporalio.service import RPCError

from api import incidents, models, watch
from api import trail as api_trail
from api.security import READERS
from api.tokens import Role
from audit.browse import records_of_kind
from console.access import allowed, ensure, registry, signed_in, temporal, trail
from console.charts import svg
from console.incident_view import CHARTED_KINDS, LOOK_KIND, bake_clock, canary_series, timeline
from console.live_route import READ_TIMEOUT_S, read_live_route
from console.render import refusal, render
from console.sessions import ConsoleSession
from console.trail_view import TrailQuery, trail_query, trail_view
from contracts.canary import ControlAction
from contracts.incident import Phase
from contracts.model import ModelManifest
from contracts.severity import Severity

router = APIRouter(prefix="/console", include_in_schema=False)
Session = Annotated[ConsoleSession, Depends(signed_in)]
IncidentId = Annotated[str, Path(pattern=incidents.INCIDENT_ID)]
_SLUG = re.compile(incidents.SLUG)
E = TypeVar("E", Phase, Severity)


def _slug_or_none(field: str, value: str | None) -> str | None:
    """An empty filter is no filter; anything else must be a slug (it goes into a query)."""
    if not value:
        return None
    if not _SLUG.match(value):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{field}: {value!r} is not a valid id"
        )
    return value


def _enum_or_none(field: str, kind: type[E], value: str | None) -> E | None:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{field}: {value!r} is not one of {allowed}"
        ) from None


@router.get("/")
async def incidents_page(
    request: Request,
    session: Session,
    model: Annotated[str | None, Query(max_length=100)] = None,
    phase: Annotated[str | None, Query(max_length=50)] = None,
    severity: Annotated[str | None, Query(max_length=20)] = None,
    playbook: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    who = session.principal
    try:
        ensure(who, *READERS)
        filters = {
            "model": _slug_or_none("model", model),
            "phase": _enum_or_none("phase", Phase, phase),
            "severity": _enum_or_none("severity", Severity, severity),
            "playbook": _slug_or_none("playbook", playbook),
        }
        found = await incidents.list_incidents(temporal(request), who, limit=200, **filters)  # type: ignore[arg-type]
    except HTTPException as error:
        return refusal(request, session, error)
    return render(
        request,
        "incidents.html",
        session,
        incidents=found,
        filters={k: v or "" for k, v in filters.items()},
        phases=[p.value for p in Phase],
        severities=[s.value for s in Severity],
    )


@router.get("/incidents/{incident_id}")
async def incident_page(
    request: Request,
    session: Session,
    incident_id: IncidentId,
    query: Annotated[TrailQuery, Depends(trail_query)],
) -> Response:
    """The incident, with the latest page of its timeline (older pages linked, searchable)
    and its canary's looks drawn as charts."""
    who = session.principal
    try:
        ensure(who, *READERS)
        state = await incidents.show_incident(incident_id, temporal(request), who)
    except HTTPException as error:
        return refusal(request, session, error)
    manifest = registry(request).get(state.model)
    live = await read_live_route(request.app.state.settings, manifest) if manifest else None
    view, looks = None, []
    if allowed(who, *api_trail.TRAIL_READERS):
        engine = trail(request).engine
        view = await trail_view(
            engine,
            incident_id,
            query,
            path=f"/console/incidents/{incident_id}",
            fragment="timeline-h",
            hidden_kinds=CHARTED_KINDS,
        )
        if state.canary is not None:
            looks = await asyncio.to_thread(records_of_kind, engine, incident_id, LOOK_KIND)
    series = canary_series(looks)
    settings = request.app.state.settings
    return render(
        request,
        "incident.html",
        session,
        state=state,
        live=live,
        trail=view,
        timeline=timeline(view.page.records) if view else [],
        charts=[(s, svg(s)) for s in series],
        bake=bake_clock(state.canary.live if state.canary else None),
        done=_done(request),
        ui_url=incidents.ui_url(settings, incident_id),
        step_ui_url=(
            incidents.ui_url(settings, state.canary.step_workflow_id)
            if state.canary and state.canary.step_workflow_id
            else None
        ),
    )


def _done(request: Request) -> str | None:
    """The control just applied (after the form's redirect), if it is one."""
    action = request.query_params.get("done")
    return action if action in {a.value for a in ControlAction} else None


@router.get("/models")
async def models_page(request: Request, session: Session) -> Response:
    who = session.principal
    try:
        ensure(who, *READERS)
        manifests = models.list_models(registry(request), Response(), who)
    except HTTPException as error:
        return refusal(request, session, error)
    settings = request.app.state.settings

    async def row(manifest: ModelManifest) -> tuple[Any, ...]:
        try:
            watch_state = await asyncio.wait_for(
                watch.show_watch(manifest.id, temporal(request), who), READ_TIMEOUT_S
            )
            watch_problem = None
        except HTTPException as error:
            watch_state, watch_problem = None, str(error.detail)
        except (TimeoutError, RPCError):
            # A watch answers queries through its worker: with none polling its queue, the
            # query would hang the page; this page says so instead.
            watch_state = None
            watch_problem = (
                f"the watch did not answer within {READ_TIMEOUT_S:.0f} s "
                "(is the containment worker running?)"
            )
        return manifest, watch_state, watch_problem, await read_live_route(settings, manifest)

    # Every model's watch and target at once: one target that does not answer costs the
    # page its read timeout once, not once per model behind it.
    rows = await asyncio.gather(*(row(manifest) for manifest in manifests))
    return render(request, "models.html", session, rows=rows)


@router.get("/audit")
async def audit_page(
    request: Request,
    session: Session,
    query: Annotated[TrailQuery, Depends(trail_query)],
    incident: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """An incident's trail, a page at a time and searchable, and the chain's verification."""
    who = session.principal
    try:
        ensure(who, *api_trail.TRAIL_READERS)
        if incident and not re.match(incidents.INCIDENT_ID, incident):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"incident: {incident!r} is not an incident id",
            )
    except HTTPException as error:
        return refusal(request, session, error)
    view = None
    if incident:
        view = await trail_view(
            trail(request).engine,
            incident,
            query,
            path="/console/audit",
            keep={"incident": incident},
        )
    verification = None
    if allowed(who, Role.AUDITOR, Role.ADMIN):
        verification = await asyncio.to_thread(api_trail.verify_trail, trail(request), who)
    return render(
        request,
        "audit.html",
        session,
        incident=incident or "",
        query=query,
        trail=view,
        verification=verification,
    )


@router.get("/audit/{incident_id}/export")
async def audit_export(request: Request, session: Session, incident_id: IncidentId) -> Response:
    """The same export as ``GET /v1/incidents/{id}/trail``, as a file to keep."""
    who = session.principal
    try:
        ensure(who, *api_trail.TRAIL_READERS)
        export = await asyncio.to_thread(api_trail.incident_trail, incident_id, trail(request), who)
    except HTTPException as error:
        return refusal(request, session, error)
    return Response(
        content=export.model_dump_json(indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{incident_id}-trail.json"',
            "Cache-Control": "no-store",
        },
    )

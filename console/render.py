"""Rendering console pages: one Jinja2 environment, the session's facts in every page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.security import READERS
from api.tokens import APPROVER_ROLES, Role
from api.trail import TRAIL_READERS
from console.access import allowed
from console.sessions import ConsoleSession
from contracts.canary import CONTROLLER_ROLE

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# Extra security headers for console pages: no framing (clickjacking on the approve
# button), no inline script, no referrer leaking incident ids to other sites.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'none'; frame-ancestors 'none'; form-action 'self' ; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def can(session: ConsoleSession | None) -> dict[str, bool]:
    """Which controls this person may see: the same role lists the API enforces."""
    if session is None:
        return {}
    who = session.principal
    return {
        "read": allowed(who, *READERS),
        "trail": allowed(who, *TRAIL_READERS),
        "verify": allowed(who, Role.AUDITOR, Role.ADMIN),
        "sign": allowed(who, *APPROVER_ROLES),
        "control_canary": allowed(who, Role(CONTROLLER_ROLE)),
    }


def render(
    request: Request,
    template: str,
    session: ConsoleSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {"session": session, "can": can(session), **context},
        status_code=status_code,
    )
    response.headers.update(HEADERS)
    return response


def refusal(request: Request, session: ConsoleSession | None, error: HTTPException) -> HTMLResponse:
    """An API refusal (403, 404, 409, 422…) shown as a page, with its reason."""
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    return render(
        request,
        "message.html",
        session,
        status_code=error.status_code,
        title="Refused",
        message=detail,
    )

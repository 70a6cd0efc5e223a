"""Rendering console pages: one Jinja2 environment, the session's facts in every page."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.security import READERS
from api.tokens import APPROVER_ROLES, Role
from api.trail import TRAIL_READERS
from console.access import allowed
from console.incident_view import summary
from console.sessions import ConsoleSession
from contracts.canary import CONTROLLER_ROLE

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["summary"] = summary

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


TITLES = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Not possible here",
    409: "Conflict",
    413: "Too large",
    422: "Invalid input",
    502: "Temporal refused",
    503: "Unavailable for now",
}


def error_page(
    request: Request,
    session: ConsoleSession | None,
    status_code: int,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A refusal or failure shown as a page with its status and reason (never JSON to a
    person); a 503 also says when to retry."""
    if status_code == 503:
        wait = next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None)
        message = message.removesuffix("; try again later").rstrip(". ")
        message = f"{message}. Please try again" + (f" in {wait} seconds." if wait else " shortly.")
    response = render(
        request,
        "message.html",
        session,
        status_code=status_code,
        title=TITLES.get(status_code) or HTTPStatus(status_code).phrase,
        message=message,
    )
    response.headers.update(headers or {})
    return response


def refusal(request: Request, session: ConsoleSession | None, error: HTTPException) -> HTMLResponse:
    """An API refusal (403, 404, 409, 422…) shown as a page, with its reason."""
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    return error_page(request, session, error.status_code, detail, error.headers)

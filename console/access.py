"""Who is at the console: the session behind the cookie, its CSRF token, role checks.

Role checks are the JSON API's own (:func:`api.security.check_roles`), applied to the
session's principal, so a control the console shows and the route it posts to are
governed by the same role lists as the API.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status

from api.security import check_roles
from api.temporal import TemporalConnection
from api.tokens import Principal, Role
from audit.trail import AuditTrail
from console.sessions import (
    SESSION_COOKIE,
    ConsoleSession,
    SessionProblem,
    SessionStore,
    csrf_matches,
)
from incidents.decisions import DecisionSigner
from registry.service import ModelRegistry


class SignInRequired(Exception):
    """No live session: the visitor is shown the sign-in page and why."""

    def __init__(self, problem: SessionProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class CsrfRefused(Exception):
    """A form arrived without this session's CSRF token: nothing is changed."""


def sessions(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.console_sessions
    return store


def signed_in(request: Request) -> ConsoleSession:
    """The FastAPI dependency every console page and form declares."""
    lookup = sessions(request).find(request.cookies.get(SESSION_COOKIE))
    if lookup.session is None:
        raise SignInRequired(lookup.problem or SessionProblem.NONE)
    return lookup.session


async def checked_form(request: Request, session: ConsoleSession) -> dict[str, str]:
    """The posted form, once its CSRF token proves it came from this session's pages."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    if not csrf_matches(session, fields.get("csrf_token")):
        raise CsrfRefused
    return fields


def allowed(principal: Principal, *roles: Role) -> bool:
    """Whether the API's own role check would admit ``principal`` (for showing controls)."""
    try:
        check_roles(principal, *roles)
    except HTTPException:
        return False
    return True


def ensure(principal: Principal, *roles: Role) -> None:
    """The API's role check, refusing with its 403 and reason."""
    check_roles(principal, *roles)


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail)


def temporal(request: Request) -> TemporalConnection:
    """The API's Temporal connection, the one its JSON routes are given."""
    connection: TemporalConnection = request.app.state.temporal
    return connection


def signer(request: Request) -> DecisionSigner:
    signing: DecisionSigner = request.app.state.decision_signer
    return signing


def trail(request: Request) -> AuditTrail:
    the_trail: AuditTrail = request.app.state.trail
    return the_trail


def registry(request: Request) -> ModelRegistry:
    models: ModelRegistry = request.app.state.registry
    return models

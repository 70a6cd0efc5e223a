"""Authentication and role checks, as FastAPI dependencies every route declares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.tokens import Principal, Role, TokenStore

_bearer = HTTPBearer(auto_error=False, description="a Fairlane API token")

READERS = (
    Role.INCIDENT_COMMANDER,
    Role.AUDITOR,
    Role.ADMIN,
    Role.LEGAL,
    Role.COMPLIANCE,
    Role.EXECUTIVE,
    Role.COMMUNICATIONS,
    Role.DATA_SCIENCE_LEAD,
)


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    """The token's principal. Async on purpose: the lookup is a stat and a dict read, and a
    plain ``def`` dependency costs every request a hop through the thread pool, which in
    an alert storm is where requests queued."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    store: TokenStore = request.app.state.tokens
    principal = store.principal_for(credentials.credentials)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def check_roles(principal: Principal, *roles: Role) -> Principal:
    """``principal`` if it holds at least one of ``roles``; else the 403 that says so.

    The one role check: the API's dependencies and the console's controls both call it.
    """
    if not principal.holds(*roles):
        held = ", ".join(r.value for r in principal.roles)
        allowed = ", ".join(r.value for r in roles)
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{principal.name} holds [{held}]; this needs one of [{allowed}]",
        )
    return principal


def require(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits principals holding at least one of ``roles``."""

    async def check(principal: Principal = Depends(authenticate)) -> Principal:
        return check_roles(principal, *roles)

    return check

"""Signing in and out: the sign-in page, the trip to the provider and back, sign-out."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import RedirectResponse, Response

from console.access import checked_form, sessions, signed_in
from console.oidc import CALLBACK_PATH, OidcClient, PendingSignIn, SignInError
from console.render import render
from console.sessions import SESSION_COOKIE, SIGNIN_COOKIE, SIGNIN_MAX_AGE_S, ConsoleSession

router = APIRouter(prefix="/console", include_in_schema=False)
log = structlog.get_logger(__name__)


def safe_next(path: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    if path and path.startswith("/console/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/console/"


def _oidc(request: Request) -> OidcClient:
    client: OidcClient | None = getattr(request.app.state, "console_oidc", None)
    if client is None:
        client = OidcClient(request.app.state.settings)
        request.app.state.console_oidc = client
    return client


@router.get("/sign-in")
def sign_in_page(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    return render(request, "sign_in.html", None, next=safe_next(next))


@router.get("/auth/start")
async def start(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    try:
        url, pending = await _oidc(request).start(safe_next(next))
    except SignInError as error:
        return render(request, "sign_in.html", None, status_code=503, problem=str(error))
    response = RedirectResponse(url, status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SIGNIN_COOKIE,
        sessions(request).sign_pending(pending.model_dump()),
        max_age=SIGNIN_MAX_AGE_S,
        path=CALLBACK_PATH,
        httponly=True,
        secure=sessions(request).secure,
        samesite="lax",  # the provider sends the browser back with a top-level GET
    )
    return response


@router.get("/auth/callback")
async def callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=500)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    store = sessions(request)
    raw = store.read_pending(request.cookies.get(SIGNIN_COOKIE))
    try:
        if error is not None:
            raise SignInError(f"the identity provider did not sign you in ({error})")
        if raw is None:
            raise SignInError("this sign-in was not started in this browser, or took too long")
        if not code or not state:
            raise SignInError("the sign-in response is missing its code or state")
        pending = PendingSignIn.model_validate(raw)
        principal = await _oidc(request).finish(code, state, pending)
    except SignInError as problem:
        log.info("console sign-in refused", reason=str(problem))
        refused = render(request, "sign_in.html", None, status_code=401, problem=str(problem))
        refused.delete_cookie(SIGNIN_COOKIE, path=CALLBACK_PATH)
        return refused
    cookie, _ = store.open(principal)
    log.info("console sign-in", principal=principal.name, roles=[r.value for r in principal.roles])
    response = RedirectResponse(safe_next(pending.next_path), status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SIGNIN_COOKIE, path=CALLBACK_PATH)
    set_session_cookie(response, cookie, store.secure)
    return response


def set_session_cookie(response: Response, cookie: str, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE, cookie, path="/console", httponly=True, secure=secure, samesite="lax"
    )


@router.post("/sign-out")
async def sign_out(
    request: Request, session: Annotated[ConsoleSession, Depends(signed_in)]
) -> Response:
    await checked_form(request, session)
    sessions(request).end(request.cookies.get(SESSION_COOKIE))
    response = render(request, "sign_in.html", None, problem="You are signed out.")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response

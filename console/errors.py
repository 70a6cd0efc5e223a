"""Errors as pages for people: a browser at the console gets HTML, the API keeps JSON.

The API's exception handlers (``api/errors.py`` and FastAPI's own) answer JSON, which
is right for ``/v1`` clients and useless to a person: a browser that followed a stale
link, typed a bad incident id or met Temporal restarting would be shown raw JSON. Each
handler is wrapped here: for a request that wants a page (any ``/console`` path, or a
browser's ``Accept: text/html`` anywhere outside ``/v1``), the handler's answer is kept
(its status, its reason, its ``Retry-After``) and shown as the console's message page;
every other request gets the handler's JSON unchanged. Failures nobody handled (500)
get a page too, with nothing of the failure in it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request, status
from fastapi.responses import PlainTextResponse, Response

from console.access import sessions
from console.render import error_page
from console.sessions import SESSION_COOKIE, ConsoleSession

log = structlog.get_logger(__name__)

Handler = Callable[[Request, Any], Response | Awaitable[Response]]
KEPT_HEADERS = ("retry-after", "allow")
_WHERE = {"path": "in the address", "query": "in the query", "body": "in the form"}


def wants_page(request: Request) -> bool:
    """Whether this request is a person's browser at the console, not an API client."""
    path = request.url.path
    if path == "/console" or path.startswith("/console/"):
        return True
    if path == "/v1" or path.startswith("/v1/"):
        return False
    return "text/html" in request.headers.get("accept", "")


def install_error_pages(app: FastAPI) -> None:
    """Wrap every exception handler installed so far; call it before the console adds
    handlers of its own (which answer pages already)."""
    for kind, handler in list(app.exception_handlers.items()):
        app.exception_handlers[kind] = _page_or(handler)
    app.add_exception_handler(Exception, _unhandled)


def _page_or(handler: Handler) -> Handler:
    async def answer(request: Request, error: Any) -> Response:
        response = handler(request, error)
        if inspect.isawaitable(response):
            response = await response
        if response is None or not wants_page(request):  # None: a websocket's handler
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() in KEPT_HEADERS}
        return error_page(
            request,
            _session(request, response.status_code),
            response.status_code,
            _message(request, response),
            headers,
        )

    return answer


def _message(request: Request, response: Response) -> str:
    """The handler's reason, in words: a validation error names each field and where it was."""
    try:
        detail = json.loads(bytes(response.body)).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if response.status_code == status.HTTP_404_NOT_FOUND and detail in (None, "Not Found"):
        return f"There is no console page at {request.url.path}."
    if response.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        return f"{request.method} is not possible at {request.url.path}."
    if isinstance(detail, list):
        return " ".join(_field_problem(problem) for problem in detail if isinstance(problem, dict))
    return str(detail) if detail else "The request was refused."


def _field_problem(problem: dict[str, Any]) -> str:
    """``{"loc": ["query", "before"], "msg": "..."}`` as "before (in the query): ..."."""
    loc = [str(part) for part in problem.get("loc", [])]
    where = _WHERE.get(loc[0], "") if loc else ""
    field = ".".join(loc[1:] if where else loc) or "request"
    return f"{field}{f' ({where})' if where else ''}: {problem.get('msg', 'is not valid')}."


def _session(request: Request, status_code: int) -> ConsoleSession | None:
    """The visitor's session, for the page's header; none while the database may be the
    trouble (a 503), and none if it cannot be read."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or status_code >= 500:
        return None
    try:
        return sessions(request).find(cookie).session
    except Exception:  # a page about one error must not fail with another
        return None


async def _unhandled(request: Request, error: Exception) -> Response:
    """A failure nothing handled: Starlette logs it and re-raises; the person gets a page."""
    if not wants_page(request):
        return PlainTextResponse("Internal Server Error", status.HTTP_500_INTERNAL_SERVER_ERROR)
    log.error("console page failed", path=request.url.path, error_type=type(error).__name__)
    return error_page(
        request,
        None,
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        "Something went wrong on Fairlane's side; it has been logged. Nothing you did caused "
        "it. Try again, and tell the Fairlane operators if it happens again.",
    )

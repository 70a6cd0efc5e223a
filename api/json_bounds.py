"""JSON bodies kept within :mod:`contracts.bounds` before any route sees them.

A lone surrogate (``"\\ud800"``) passes pydantic's ``str`` validation and breaks every
later encode of it, in Temporal's payload converter, the database or the answer; a body
nested hundreds of levels deep exhausts the recursion of whatever walks it next. Both
are refused here, once, for every route: **422** naming the field (``loc``, FastAPI's
shape), before the body is parsed for the route. The raw text is read first
(:func:`~contracts.bounds.plainly_within_bounds`); only a body it cannot vouch for is
parsed and walked.

It sits inside :class:`~api.body_limit.BodyLimit`, which bounds what is buffered here.
A body that is not JSON, or not parseable, is passed on untouched for the route to refuse
in its own words.
"""

from __future__ import annotations

import json

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.bounds import MAX_DEPTH, Loc, first_problem, plainly_within_bounds

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class JsonBodyBounds:
    """ASGI middleware: 422 for a JSON body too deep or holding unencodable text."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY or not _json(scope):
            await self._app(scope, receive, send)
            return
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        problem = _problem_in(body)
        if problem is not None:
            response = JSONResponse({"detail": [problem]}, status_code=422)
            await response(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self._app(scope, replay, send)


def _json(scope: Scope) -> bool:
    """Whether FastAPI would read the body as JSON (declared so, or not declared)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.decode("latin-1").split(";", 1)[0].strip().lower()
            return bool(media == "application/json" or media.endswith("+json"))
    return True


def _problem_in(body: bytes) -> dict[str, object] | None:
    if not body.strip() or plainly_within_bounds(body):
        return None  # the common case, read from the raw text: no parse, no walk
    try:
        value = json.loads(body)
    except RecursionError:
        return _detail((), f"nested more than {MAX_DEPTH} levels deep", "too_deep")
    except ValueError:
        return None  # not JSON: the route answers in its own words
    problem = first_problem(value)
    if problem is None:
        return None
    return _detail(problem.loc, problem.msg, problem.type)


def _detail(loc: Loc, msg: str, type_: str) -> dict[str, object]:
    return {"loc": ["body", *loc], "msg": msg, "type": type_}

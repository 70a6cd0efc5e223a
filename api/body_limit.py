"""A ceiling on request bodies, enforced before any of the body is held in memory.

FastAPI reads a whole body before it evaluates a single dependency, authentication
included, so without a ceiling anyone who can reach the port can make the API hold
whatever they send. This ASGI middleware sits outside everything else and answers
**413** on its own:

* without holding any of it, when ``Content-Length`` declares more than the limit;
* as soon as the bytes actually received pass the limit, for a body without
  ``Content-Length`` (chunked) or one that lies about it.

Before answering, what the client is still sending is read off the socket and thrown
away (up to :data:`DRAIN_BYTES`), because a client that is still uploading would
otherwise see its connection reset instead of the 413; past that the connection is
closed. A client that asked ``Expect: 100-continue`` is answered at once, and never
sends the body.

The limit is per path prefix (alerts get a larger one, see ``Settings``), the longest
matching prefix winning.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DRAIN_BYTES = 64 * 1024 * 1024
"""How much of a refused body is read and discarded so the client gets its answer."""


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body passes the limit. An HTTPException, so that
    FastAPI's body reading lets it through (rather than logging a parse error); the
    middleware then answers 413 itself."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes, the limit here")


class BodyLimit:
    """ASGI middleware: 413 for a body over ``default`` bytes (or its path's own limit)."""

    def __init__(self, app: ASGIApp, default: int, by_prefix: Mapping[str, int]) -> None:
        self._app = app
        self._default = default
        self._by_prefix = sorted(by_prefix.items(), key=lambda item: len(item[0]), reverse=True)

    def limit_for(self, path: str) -> int:
        for prefix, limit in self._by_prefix:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared == -1:
            await _refuse(scope, receive, send, 400, "Content-Length is not a number")
            return
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, 413, BodyTooLarge(limit).detail)
            return

        received = 0
        overflowed = started = complete = False

        async def counting_receive() -> Message:
            nonlocal received, overflowed, complete
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    overflowed = not started
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            # Whatever the app answers to a body it never got whole is replaced below,
            # once the rest of the body is drained.
            nonlocal started
            if overflowed:
                return
            started = True
            await send(message)

        try:
            await self._app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not overflowed:
                raise
        if overflowed:
            await _refuse(scope, receive, send, 413, BodyTooLarge(limit).detail, drain=not complete)


def _content_length(scope: Scope) -> int | None:
    """The declared length; ``None`` if not declared, ``-1`` if not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, detail: str, *, drain: bool = True
) -> None:
    """Answer ``status``, after discarding what the client still sends (see module doc)."""
    drained = not drain or _expects_continue(scope) or await _drain(receive)
    headers = {} if drained else {"Connection": "close"}
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response(scope, receive, send)


async def _drain(receive: Receive) -> bool:
    """Read the rest of the body without keeping it; False if it went past DRAIN_BYTES
    or the client went away."""
    discarded = 0
    while discarded <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return False
        discarded += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue" for name, value in scope["headers"]
    )

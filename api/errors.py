"""How the API answers when something fails beneath it: with meaning, never a bare 500.

Routes let the failures of what they stand on propagate; the handlers here turn them
into answers a client can act on:

* Temporal or the database not reachable right now (Temporal's UNAVAILABLE or
  DEADLINE_EXCEEDED, a failed connect, a database connection refused, dropped or
  locked): **503** with ``Retry-After`` and a ``detail`` naming what is unavailable.
  The internals (addresses, driver messages) go to the log, not to the client.
* a workflow that cannot answer a query now (its task failing, no worker): **503**.
* any other refusal by Temporal: **502**, with Temporal's reason.
* a stored manifest that no longer reads: **409** naming the model, so it can be
  registered again (:class:`~registry.service.UnreadableManifest`).
* request validation (**422**): FastAPI's own shape (``loc``, ``msg``, ``type``), but
  echoing only scalar inputs, made encodable and short, so that an answer about bad
  input can never itself fail to encode, nor reflect a whole body back.

Real answers stay where the routes give them: a 404 for an incident that is not there,
a 409 for one that is closed (see ``api/incidents.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from registry.service import UnreadableManifest

log = structlog.get_logger(__name__)

RETRY_AFTER_S = 5
"""What ``Retry-After`` says: long enough for a restarted server, short enough for alerts."""

_TEMPORAL_UNAVAILABLE = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})
_ECHOED_INPUT_CHARS = 200


class ServiceUnavailable(Exception):
    """Something the API needs cannot be reached right now; the request may be sent again."""

    def __init__(self, service: str, detail: str) -> None:
        self.service = service
        self.detail = detail
        super().__init__(detail)


def temporal_unavailable(error: RPCError) -> bool:
    """Whether ``error`` says Temporal is unreachable (retry later), not that it refused."""
    return error.status in _TEMPORAL_UNAVAILABLE


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceUnavailable, _service_unavailable)
    app.add_exception_handler(RPCError, _temporal_error)
    app.add_exception_handler(WorkflowQueryFailedError, _query_failed)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(UnreadableManifest, _unreadable_manifest)
    app.add_exception_handler(RequestValidationError, _invalid_request)


def unavailable_response(detail: str) -> JSONResponse:
    return JSONResponse(
        {"detail": detail},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _service_unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceUnavailable)
    log.warning("service unavailable", service=exc.service, path=request.url.path)
    return unavailable_response(exc.detail)


async def _temporal_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    if temporal_unavailable(exc):
        log.warning("temporal unavailable", status=exc.status.name, error=exc.message)
        return unavailable_response("Temporal is unavailable; try again later")
    log.warning("temporal refused", status=exc.status.name, error=exc.message)
    return JSONResponse(
        {"detail": f"Temporal refused the request ({exc.status.name}): {exc.message}"},
        status_code=status.HTTP_502_BAD_GATEWAY,
    )


async def _query_failed(request: Request, exc: Exception) -> JSONResponse:
    """The workflow could not answer its query now (its task is failing, or no worker has
    its history): the incident is there, its state will read again once it recovers."""
    assert isinstance(exc, WorkflowQueryFailedError)
    log.warning("workflow query failed", path=request.url.path, error=str(exc)[:500])
    return unavailable_response(
        "the incident's workflow could not answer right now (is a worker running?); try again later"
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """Connection trouble is a 503; any other database error is a fault, raised on."""
    connection_trouble = isinstance(exc, OperationalError | InterfaceError | PoolTimeout) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
    if not connection_trouble:
        raise exc
    log.warning("database unavailable", error_type=type(exc).__name__, error=str(exc)[:500])
    return unavailable_response("the database is unavailable; try again later")


async def _unreadable_manifest(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnreadableManifest)
    log.error("unreadable stored manifest", model=exc.model_id, error=str(exc))
    return JSONResponse(
        {"detail": f"{exc}; register the model again"}, status_code=status.HTTP_409_CONFLICT
    )


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"detail": [_safe_error(error) for error in exc.errors()]},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _safe_error(error: Any) -> dict[str, Any]:
    safe: dict[str, Any] = {
        "type": _encodable(str(error.get("type", ""))),
        "loc": [_scalar(part) for part in error.get("loc", ())],
        "msg": _encodable(str(error.get("msg", ""))),
    }
    if "input" in error and _is_scalar(error["input"]):
        safe["input"] = _scalar(error["input"])
    ctx = error.get("ctx")
    if isinstance(ctx, dict):
        safe["ctx"] = {str(key): _scalar(value) for key, value in ctx.items()}
    return safe


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _scalar(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, int | float | bool):
        return value
    text = value if isinstance(value, str) else _joined(value)
    return _encodable(text[:_ECHOED_INPUT_CHARS])


def _joined(value: object) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return ", ".join(str(item) for item in value)
    return str(value)


def _encodable(text: str) -> str:
    """``text`` with whatever UTF-8 cannot encode (lone surrogates) spelled as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")

"""An async client for the gateway (or any router of the contract): activities, demo, benches.

Failures come back typed: :class:`StaleRouteError` when a route update lost the
generation race (the caller re-reads and decides), :class:`OutcomeConflictError` when
outcomes contradict ones already recorded, :class:`RouterError` for anything else,
carrying the router's own reason so an audit record says why, not just "409".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import TypeAdapter

from contracts.metrics import DecisionWindow
from contracts.model import ModelManifest
from contracts.routing import Route, RouteUpdate, Serving
from decisions.records import WINDOW_PATH, WindowQuery
from router.schemas import (
    BatchDecisionRequest,
    BatchDecisions,
    Decision,
    DecisionRequest,
    Deployment,
    DeploymentRequest,
    FallbackDocument,
    LoggedDecision,
    OutcomesRecorded,
)

_RECORDS = TypeAdapter(list[LoggedDecision])


class RouterError(Exception):
    """The router refused a request or could not be reached (``status_code`` is then None)."""

    def __init__(self, reason: str, status_code: int | None = None) -> None:
        super().__init__(reason if status_code is None else f"{status_code}: {reason}")
        self.reason = reason
        self.status_code = status_code


class StaleRouteError(RouterError):
    """A route update was refused because its generation is not newer (HTTP 409)."""

    def __init__(self, reason: str, current: Route | None) -> None:
        super().__init__(reason, 409)
        self.current = current


class OutcomeConflictError(RouterError):
    """Outcomes were refused because a decision already has the opposite one (HTTP 409).

    Nothing of the batch was recorded; the reason names the record at fault.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason, 409)


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reason(response: httpx.Response) -> str:
    """The router's explanation, from FastAPI's ``detail`` (a string, or validation errors)."""
    detail = _error_body(response).get("detail")
    if detail is None:
        return response.text or response.reason_phrase
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', []))}: {error.get('msg')}"
            for error in detail
        )
    return str(detail)


ROUTER_CONNECTIONS = 16
"""Connections a client keeps to its router; more requests than this wait their turn.
With httpx's default (100, of which 20 kept alive) a storm's hundred concurrent
containments opened and closed connections by the dozen, and httpcore's pool checked
every open connection's socket on each request: a tenth of the containment worker's CPU
in the storm's first seconds (py-spy), against 3% with sixteen."""


class RouterClient:
    """``async with RouterClient(url, token) as gateway: await gateway.get_route("claims")``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=ROUTER_CONNECTIONS),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RouterError(f"router unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 409 and method == "PUT" and path.endswith("/route"):
            current = _error_body(response).get("current")
            raise StaleRouteError(
                _reason(response), Route.model_validate(current) if current else None
            )
        if response.status_code == 409 and method == "POST" and path.endswith("/outcomes"):
            raise OutcomeConflictError(_reason(response))
        if response.is_error:
            raise RouterError(_reason(response), response.status_code)
        return response

    async def health(self) -> bool:
        """Whether the router answers its health check."""
        try:
            await self._request("GET", "/healthz")
        except RouterError:
            return False
        return True

    async def get_route(self, model: str) -> Route:
        response = await self._request("GET", f"/v1/models/{model}/route")
        return Route.model_validate_json(response.content)

    async def set_route(self, model: str, update: RouteUpdate) -> Route:
        """Set the route; a retry of an applied update returns the route unchanged."""
        response = await self._request(
            "PUT", f"/v1/models/{model}/route", json=update.model_dump(mode="json")
        )
        return Route.model_validate_json(response.content)

    async def deploy(
        self,
        model: str,
        versions: Mapping[str, str],
        primary_version: str,
        digests: Mapping[str, str] | None = None,
        *,
        manifest: ModelManifest,
        fallback: FallbackDocument | None = None,
    ) -> Deployment:
        """Deploy exactly these versions (artifact names in the gateway's artifacts directory)
        under the model's ``manifest`` and ``fallback`` rules."""
        body = DeploymentRequest(
            versions=dict(versions),
            primary_version=primary_version,
            digests=dict(digests or {}),
            manifest=manifest,
            fallback=fallback,
        )
        response = await self._request(
            "PUT", f"/v1/models/{model}/deployment", json=body.model_dump(mode="json")
        )
        return Deployment.model_validate_json(response.content)

    async def get_deployment(self, model: str) -> Deployment:
        """The model's deployed versions and current route."""
        response = await self._request("GET", f"/v1/models/{model}/deployment")
        return Deployment.model_validate_json(response.content)

    async def decide(self, model: str, request: DecisionRequest) -> Decision:
        response = await self._request(
            "POST", f"/v1/models/{model}/decisions", json=request.model_dump(mode="json")
        )
        return Decision.model_validate_json(response.content)

    async def decide_batch(self, model: str, requests: list[DecisionRequest]) -> list[Decision]:
        """Decisions for up to ``MAX_BATCH`` requests, all or nothing."""
        body = BatchDecisionRequest(records=requests)
        response = await self._request(
            "POST", f"/v1/models/{model}/decisions:batch", json=body.model_dump(mode="json")
        )
        return BatchDecisions.model_validate_json(response.content).decisions

    async def decisions(
        self,
        model: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        served_by: Serving | None = None,
        include_shadow: bool = False,
        limit: int = 1000,
    ) -> list[LoggedDecision]:
        """Logged decisions with ``since <= at < until`` (aware datetimes), oldest first."""
        params: dict[str, str | int] = {
            "include_shadow": str(include_shadow).lower(),
            "limit": limit,
        }
        if since is not None:
            params["since"] = since.isoformat()
        if until is not None:
            params["until"] = until.isoformat()
        if served_by is not None:
            params["served_by"] = served_by.value
        response = await self._request("GET", f"/v1/models/{model}/decisions", params=params)
        return _RECORDS.validate_json(response.content)

    async def record_outcomes(self, model: str, outcomes: Mapping[str, bool]) -> OutcomesRecorded:
        """Record ground truth (decision id -> good) for live decisions of ``model``.

        All or nothing, and safe to retry: an outcome already recorded counts as
        ``unchanged``. Raises :class:`OutcomeConflictError` if one contradicts a
        recorded outcome, :class:`RouterError` (422) if an id is not a live decision
        of the model or the batch is larger than
        :data:`router.schemas.MAX_OUTCOMES_PER_REQUEST`. An empty mapping records
        nothing and asks the gateway nothing.
        """
        if not outcomes:
            return OutcomesRecorded(recorded=0, unchanged=0)
        # Validated by the gateway, so every refusal comes back as a RouterError.
        body = {"outcomes": [{"decision_id": i, "good": good} for i, good in outcomes.items()]}
        response = await self._request("POST", f"/v1/models/{model}/outcomes", json=body)
        return OutcomesRecorded.model_validate_json(response.content)

    async def window(
        self, model: str, candidate_version: str, since: datetime, until: datetime
    ) -> DecisionWindow:
        """Live decisions in the minutes overlapping ``[since, until)`` as canary cells."""
        query = WindowQuery(candidate_version=candidate_version, since=since, until=until)
        response = await self._request(
            "GET", WINDOW_PATH.format(model=model), params=query.model_dump(mode="json")
        )
        return DecisionWindow.model_validate_json(response.content)

"""The API's Prometheus metrics: requests, alerts received, open incidents by phase.

``GET /metrics`` serves, in the Prometheus text format, to auditor and admin tokens
(a scraper gets its own token: ``fairlane tokens create --name prometheus --role auditor``):

* ``fairlane_http_requests_total{method, route, status}`` and
  ``fairlane_http_request_duration_seconds{method, route}``: every HTTP request, by
  route *template* (``/v1/incidents/{incident_id}``, never the concrete path, so ids
  cannot blow up the series count; ``unmatched`` for paths no route serves);
* ``fairlane_alerts_received_total{source, kind}``: external alerts, counted by the
  alert intake through :func:`count_alert_received`;
* ``fairlane_open_incidents{phase}``: running incidents per phase, counted by Temporal's
  visibility (one count query per open phase, at scrape time); absent from a scrape in
  which Temporal did not answer.

Each app keeps its own registry (``app.state.metrics``), so several apps can share a
process. Tokens and payloads never become labels.

An API served by several processes (``api_workers``, :mod:`api.processes`) counts in
prometheus_client's multiprocess mode: every process writes its counters and
histograms to files in one directory, and a scrape, whichever process answers it, sums
them all, so a counter never seems to go back when another process answers. The open
incidents are not counted per process but asked of Temporal at scrape time, so they
are a collector of their own, outside those files.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from api.deps import TemporalDep
from api.security import require
from api.tokens import Principal, Role
from contracts.incident import SA_PHASE, WORKFLOW_TYPE, Phase

log = structlog.get_logger(__name__)

UNMATCHED = "unmatched"
_COUNT_TIMEOUT_S = 5.0
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""The variable that puts prometheus_client in multiprocess mode (read when it is imported)."""

router = APIRouter(tags=["metrics"])


class ApiMetrics:
    """One API app's metrics, on a registry of its own (``registry``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fairlane_http_requests_total",
            "HTTP requests by route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.durations = Histogram(
            "fairlane_http_request_duration_seconds",
            "HTTP request durations by route template",
            ("method", "route"),
            registry=self.registry,
        )
        self.alerts = Counter(
            "fairlane_alerts_received_total",
            "external alerts received, by source and kind",
            ("source", "kind"),
            registry=self.registry,
        )
        self.open_incidents = OpenIncidents()
        self.registry.register(self.open_incidents)

    async def refresh_open_incidents(self, client: Client) -> None:
        """Count running incidents per open phase; on failure, leave the gauge out."""
        phases = [phase for phase in Phase if not phase.closed]
        try:
            counts = await asyncio.wait_for(
                asyncio.gather(*(client.count_workflows(_open_in(phase)) for phase in phases)),
                _COUNT_TIMEOUT_S,
            )
        except Exception as exc:
            self.open_incidents.counts = {}
            log.warning("open incidents not counted", error_type=type(exc).__name__, error=str(exc))
            return
        self.open_incidents.counts = {
            phase.value: counted.count for phase, counted in zip(phases, counts, strict=True)
        }

    def exposition(self) -> bytes:
        """The text a scrape gets: this process's metrics, or every API process's."""
        shared = os.environ.get(MULTIPROCESS_DIR)
        if not shared:
            return generate_latest(self.registry)
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone, shared)  # type: ignore[no-untyped-call]
        everyone.register(self.open_incidents)
        return generate_latest(everyone)


class OpenIncidents(Collector):
    """``fairlane_open_incidents{phase}`` as last counted (none after a failed count)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "fairlane_open_incidents",
            "running incidents by phase, from Temporal's visibility",
            labels=("phase",),
        )
        for phase, count in self.counts.items():
            gauge.add_metric((phase,), count)
        yield gauge


def _open_in(phase: Phase) -> str:
    return (
        f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' "
        f"AND {SA_PHASE.name} = '{phase.value}'"
    )


def install_metrics(app: FastAPI) -> None:
    """Give ``app`` its metrics, count every request it serves, and serve ``/metrics``."""
    app.state.metrics = ApiMetrics()
    app.add_middleware(_CountRequests, metrics=app.state.metrics)
    app.include_router(router)


def count_alert_received(app: Starlette, *, source: str, kind: str) -> None:
    """Count one external alert (e.g. ``source="alertmanager"``, ``kind="firing"``).

    ``source`` and ``kind`` must come from small fixed vocabularies, never from the
    payload's free text. A no-op on an app without metrics.
    """
    metrics: ApiMetrics | None = getattr(app.state, "metrics", None)
    if metrics is not None:
        metrics.alerts.labels(source, kind).inc()


class _CountRequests:
    """ASGI middleware: count and time each HTTP request under its route template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"]
            self._metrics.requests.labels(method, route, str(status)).inc()
            self._metrics.durations.labels(method, route).observe(time.perf_counter() - started)


@router.get("/metrics", response_class=Response)
async def metrics(
    request: Request,
    temporal: TemporalDep,
    _principal: Annotated[Principal, Depends(require(Role.AUDITOR, Role.ADMIN))],
) -> Response:
    """Prometheus metrics of the API, all its processes summed (auditor or admin)."""
    state: ApiMetrics = request.app.state.metrics
    client = temporal.connected  # no connection is made for a scrape
    if client is not None:
        await state.refresh_open_incidents(client)
    return Response(state.exposition(), media_type=CONTENT_TYPE_LATEST)

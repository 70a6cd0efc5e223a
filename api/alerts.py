"""External alerts over HTTP: Prometheus Alertmanager's webhook and the generic JSON alert.

Both routes run one pipeline: the bearer token of an ``alert_source`` principal,
the body's timestamped HMAC when one is configured (so the raw body is read here, not
by FastAPI) and each signature claimed once in the replay cache, validation that
names every bad field the way the sender spelled it, each alert's model, and then
each model's alerts to that model's watch workflow by signal-with-start. The watch
id is fixed per model, so however many deliveries race each other, the first starts
the watch and the rest queue in the same history: one incident per model, no alert
dropped.

A delivery is accepted (202) only once every watch it concerns has its signal. If
Temporal is unavailable, the answer is 503 with ``Retry-After`` and the whole delivery
may come again (Alertmanager retries 5xx): the watch recognises alerts it already holds
by ``(fingerprint, startsAt)``, so a retry, like Alertmanager's routine re-sends of a
group, is harmless.

A delivery that could never be taken is 413, never 503, so that no sender retries it
for ever: a body over ``max_alert_body_bytes`` (refused before it is read, see
``api/body_limit.py``), or one alert over :data:`MAX_ALERT_BYTES`. Everything else is
sent in signals of at most :data:`MAX_ALERTS_PER_SIGNAL` alerts and
:data:`MAX_SIGNAL_BYTES`, far below Temporal's payload limit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.service import RPCError

from alerts.alertmanager import AlertmanagerPayload
from alerts.generic import GenericPayload
from alerts.mapping import InboundAlert, ModelAlerts, alerts_by_model
from alerts.problems import AlertRejected, FieldProblem, parse_body
from alerts.replay import AlertReplayed, ReplayCache
from alerts.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify
from api.deps import AlertReplaysDep, RegistryDep, SettingsDep, TemporalDep
from api.errors import ServiceUnavailable, temporal_unavailable
from api.metrics import count_alert_received
from api.security import require
from api.temporal import TemporalConnection
from api.tokens import Principal, Role
from config import Settings
from contracts.alerts import AlertDelivery, AlertEvent
from contracts.watch import SIGNAL_ALERTS, watch_workflow_id
from incidents.watch import WatchQueues, signal_watch
from registry.service import ModelRegistry

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
log = structlog.get_logger(__name__)
P = TypeVar("P", bound=BaseModel)

MAX_ALERTS_PER_SIGNAL = 200
"""A model's alerts go to its watch in signals of at most this many, so one huge
Alertmanager group stays far below Temporal's payload size limit."""

MAX_SIGNAL_BYTES = 512 * 1024
"""...and of at most this many bytes of alerts (Temporal refuses payloads over 2 MB)."""

MAX_ALERT_BYTES = 64 * 1024
"""One alert, serialised as sent, may be at most this large: real alerts are a few KiB;
a larger one could never be signalled, nor kept in the watch's memory."""


class AlertsAccepted(BaseModel):
    delivery_id: str = Field(description="unique per accepted request; on the trail")
    alerts: int = Field(description="alerts accepted")
    models: dict[str, int] = Field(description="alerts per model")
    watches: dict[str, str] = Field(description="the watch workflow each model's alerts went to")


def _documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body the route reads raw: the model's JSON schema, with $defs inlined
    (they would otherwise point into a document that does not hold them)."""
    schema = model.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    content = {"application/json": {"schema": inline(schema)}}
    return {"requestBody": {"required": True, "content": content}}


Sender = Annotated[Principal, Depends(require(Role.ALERT_SOURCE))]


@dataclass(frozen=True)
class _Services:
    """What taking a delivery of alerts needs from the app."""

    settings: Settings
    registry: ModelRegistry
    replays: ReplayCache
    temporal: TemporalConnection


async def _services(
    settings: SettingsDep,
    registry: RegistryDep,
    replays: AlertReplaysDep,
    temporal: TemporalDep,
) -> _Services:
    return _Services(settings, registry, replays, temporal)


AlertServices = Annotated[_Services, Depends(_services)]


@router.post(
    "/alertmanager",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AlertsAccepted,
    openapi_extra=_documented_body(AlertmanagerPayload),
)
async def receive_alertmanager(
    request: Request, services: AlertServices, principal: Sender
) -> AlertsAccepted:
    """Prometheus Alertmanager's webhook (payload version 4), as Alertmanager sends it."""
    async with _authentic_body(request, services) as body:
        payload = _parse(body, AlertmanagerPayload)
        _refuse_oversized(payload.alerts)
        if payload.truncated_alerts:
            log.warning(
                "alertmanager truncated the group; raise or remove max_alerts on its receiver",
                group_key=payload.group_key,
                truncated_alerts=payload.truncated_alerts,
            )
        return await _deliver(request, services, principal, payload.alerts)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AlertsAccepted,
    openapi_extra=_documented_body(GenericPayload),
)
async def receive_alerts(
    request: Request, services: AlertServices, principal: Sender
) -> AlertsAccepted:
    """The generic JSON alert, for any other monitor (see README, "Alerts")."""
    async with _authentic_body(request, services) as body:
        payload = _parse(body, GenericPayload)
        _refuse_oversized(payload.alerts)
        return await _deliver(request, services, principal, payload.alerts)


def _unprocessable(error: AlertRejected) -> HTTPException:
    detail = [problem.as_detail() for problem in error.problems]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


@asynccontextmanager
async def _authentic_body(request: Request, services: _Services) -> AsyncIterator[bytes]:
    """The raw body, its signature checked (401) and claimed once (409) when HMAC is on.

    If the delivery is then not accepted (422, 503, anything raised) the claim is
    released, so the same signed request may be sent again while it is fresh.
    """
    body = await request.body()
    settings = services.settings
    if settings.alert_hmac_secret is None:
        yield body
        return
    try:
        checked = verify(
            settings.alert_hmac_secret,
            body,
            request.headers.get(SIGNATURE_HEADER),
            request.headers.get(TIMESTAMP_HEADER),
            tolerance_s=settings.alert_signature_tolerance_s,
            allow_legacy=settings.alert_hmac_allow_legacy,
        )
    except SignatureError as error:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(error)) from error
    if checked is None:  # a legacy signature, allowed by settings: nothing to claim
        yield body
        return
    replays = services.replays
    try:
        await asyncio.to_thread(replays.claim, checked.signature, checked.expires_at)
    except AlertReplayed as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    try:
        yield body
    except BaseException:
        await asyncio.to_thread(replays.release, checked.signature)
        raise


def _parse(body: bytes, payload_type: type[P]) -> P:
    try:
        return parse_body(payload_type, body)
    except AlertRejected as error:
        raise _unprocessable(error) from error


def _refuse_oversized(alerts: Sequence[BaseModel]) -> None:
    """413 naming every alert too large to be signalled, whatever the retries."""
    problems = [
        FieldProblem(
            ("alerts", index),
            f"this alert is {size} bytes serialised; one alert may be at most "
            f"{MAX_ALERT_BYTES} bytes",
            "alert_too_large",
        ).as_detail()
        for index, alert in enumerate(alerts)
        if (size := len(alert.model_dump_json(by_alias=True).encode())) > MAX_ALERT_BYTES
    ]
    if problems:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, problems)


async def _deliver(
    request: Request, services: _Services, principal: Principal, alerts: Sequence[InboundAlert]
) -> AlertsAccepted:
    settings = services.settings
    try:
        by_model = alerts_by_model(alerts, settings.alert_model_labels, services.registry.get)
    except AlertRejected as error:
        raise _unprocessable(error) from error

    delivery_id = f"dlv-{uuid.uuid4().hex}"
    received_at = datetime.now(UTC)
    client = await services.temporal.client()
    outcomes = await asyncio.gather(
        *(
            _signal_watch(client, settings, group, delivery_id, principal.name, received_at)
            for group in by_model.values()
        ),
        return_exceptions=True,
    )
    failed: dict[str, RPCError] = {}
    for model, outcome in zip(by_model, outcomes, strict=True):
        if isinstance(outcome, RPCError):
            failed[model] = outcome
        elif isinstance(outcome, BaseException):
            raise outcome
    if failed:
        log.warning(
            "alerts not accepted",
            delivery_id=delivery_id,
            failed={model: error.status.name for model, error in failed.items()},
        )
        refused = [error for error in failed.values() if not temporal_unavailable(error)]
        if refused:
            raise refused[0]  # not a matter of retrying: api/errors.py answers 502
        raise ServiceUnavailable(
            "temporal",
            f"Temporal is unavailable and did not take the alerts for {sorted(failed)}; the "
            "delivery was not accepted, and sending it again is safe",
        )

    for group in by_model.values():
        for event in group.events:
            count_alert_received(request.app, source=event.source.value, kind=event.status.value)
    counts = {model: len(group.events) for model, group in by_model.items()}
    log.info("alerts accepted", delivery_id=delivery_id, sender=principal.name, models=counts)
    return AlertsAccepted(
        delivery_id=delivery_id,
        alerts=sum(counts.values()),
        models=counts,
        watches={model: watch_workflow_id(model) for model in by_model},
    )


async def _signal_watch(
    client: Client,
    settings: Settings,
    group: ModelAlerts,
    delivery_id: str,
    sender: str,
    received_at: datetime,
) -> None:
    """Signal-with-start the model's watch with its alerts, in signals of bounded size."""
    for batch in _batches(group.events):
        delivery = AlertDelivery(
            delivery_id=delivery_id, sender=sender, received_at=received_at, alerts=batch
        )
        await signal_watch(
            client,
            WatchQueues.of(settings),
            group.manifest,
            SIGNAL_ALERTS,
            delivery,
        )


def _batches(events: Sequence[AlertEvent]) -> list[list[AlertEvent]]:
    """``events`` in order, cut into batches of at most MAX_ALERTS_PER_SIGNAL alerts and
    MAX_SIGNAL_BYTES (a batch holds at least one alert, each under MAX_ALERT_BYTES)."""
    batches: list[list[AlertEvent]] = []
    batch: list[AlertEvent] = []
    size = 0
    for event in events:
        event_size = len(event.model_dump_json().encode())
        if batch and (len(batch) == MAX_ALERTS_PER_SIGNAL or size + event_size > MAX_SIGNAL_BYTES):
            batches.append(batch)
            batch, size = [], 0
        batch.append(event)
        size += event_size
    if batch:
        batches.append(batch)
    return batches

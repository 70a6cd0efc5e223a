"""External alerts over HTTP: Prometheus Alertmanager's webhook and the generic JSON alert.

Both routes run one pipeline: the bearer token of an ``alert_source`` principal,
the body's HMAC when one is configured (so the raw body is read here, not by
FastAPI), validation that names every bad field the way the sender spelled it,
each alert's model, and then each model's alerts to that model's watch workflow by
signal-with-start. The watch id is fixed per model, so however many deliveries race
each other, the first starts the watch and the rest queue in the same history:
one incident per model, no alert dropped.

A delivery is accepted (202) only once every watch it concerns has its signal. If
Temporal cannot take one, the answer is 503 and the whole delivery may come again
(Alertmanager retries 5xx): the watch recognises alerts it already holds by
``(fingerprint, startsAt)``, so a retry, like Alertmanager's routine re-sends of a
group, is harmless.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
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
from alerts.problems import AlertRejected, parse_body
from alerts.signature import SIGNATURE_HEADER, SignatureError, verify
from api.metrics import count_alert_received
from api.security import require
from api.tokens import Principal, Role
from config import Settings
from contracts.alerts import AlertDelivery
from contracts.watch import SIGNAL_ALERTS, watch_workflow_id
from incidents.watch import signal_watch
from registry.service import ModelRegistry

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
log = structlog.get_logger(__name__)
P = TypeVar("P", bound=BaseModel)

MAX_ALERTS_PER_SIGNAL = 200
"""A model's alerts go to its watch in signals of at most this many, so one huge
Alertmanager group stays far below Temporal's payload size limit."""


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


@router.post(
    "/alertmanager",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AlertsAccepted,
    openapi_extra=_documented_body(AlertmanagerPayload),
)
async def receive_alertmanager(request: Request, principal: Sender) -> AlertsAccepted:
    """Prometheus Alertmanager's webhook (payload version 4), as Alertmanager sends it."""
    payload = await _parse(request, AlertmanagerPayload)
    if payload.truncated_alerts:
        log.warning(
            "alertmanager truncated the group; raise or remove max_alerts on its receiver",
            group_key=payload.group_key,
            truncated_alerts=payload.truncated_alerts,
        )
    return await _deliver(request, principal, payload.alerts)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AlertsAccepted,
    openapi_extra=_documented_body(GenericPayload),
)
async def receive_alerts(request: Request, principal: Sender) -> AlertsAccepted:
    """The generic JSON alert, for any other monitor (see README, "Alerts")."""
    payload = await _parse(request, GenericPayload)
    return await _deliver(request, principal, payload.alerts)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _unprocessable(error: AlertRejected) -> HTTPException:
    detail = [problem.as_detail() for problem in error.problems]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


async def _parse(request: Request, payload_type: type[P]) -> P:
    """The raw body, its signature checked when HMAC is on, parsed into ``payload_type``."""
    body = await request.body()
    secret = _settings(request).alert_hmac_secret
    if secret is not None:
        try:
            verify(secret, body, request.headers.get(SIGNATURE_HEADER))
        except SignatureError as error:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(error)) from error
    try:
        return parse_body(payload_type, body)
    except AlertRejected as error:
        raise _unprocessable(error) from error


async def _deliver(
    request: Request, principal: Principal, alerts: Sequence[InboundAlert]
) -> AlertsAccepted:
    settings = _settings(request)
    registry: ModelRegistry = request.app.state.registry
    try:
        by_model = alerts_by_model(alerts, settings.alert_model_labels, registry.get)
    except AlertRejected as error:
        raise _unprocessable(error) from error

    delivery_id = f"dlv-{uuid.uuid4().hex}"
    received_at = datetime.now(UTC)
    client: Client = request.app.state.temporal
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
        reasons = "; ".join(f"{model}: {error.message}" for model, error in failed.items())
        log.warning("alerts not accepted", delivery_id=delivery_id, failed=sorted(failed))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"Temporal did not take the alerts ({reasons}); the delivery was not accepted, "
            "and sending it again is safe",
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
    for start in range(0, len(group.events), MAX_ALERTS_PER_SIGNAL):
        delivery = AlertDelivery(
            delivery_id=delivery_id,
            sender=sender,
            received_at=received_at,
            alerts=group.events[start : start + MAX_ALERTS_PER_SIGNAL],
        )
        await signal_watch(
            client,
            settings.resolved_containment_task_queue,
            group.manifest,
            SIGNAL_ALERTS,
            delivery,
        )

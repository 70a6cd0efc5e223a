"""Alerts as Fairlane holds them, whichever monitor sent them.

External monitors (Prometheus Alertmanager, any JSON webhook) and the built-in drift
monitor all speak through :class:`AlertEvent`. The API normalises what it receives,
then hands a model's alerts to that model's watch workflow in one
:class:`AlertDelivery` (a signal-with-start, so the first alert of a storm starts
the watch and every later one lands in the same place).

An alert's identity across deliveries is ``(fingerprint, starts_at)``: Alertmanager
re-sends the whole group on every notification (and retries on any 5xx), so the same
pair arriving again is a repeat, while the same fingerprint with a new ``starts_at``
is the condition firing again after it had resolved.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, Field


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertSource(StrEnum):
    ALERTMANAGER = "alertmanager"
    WEBHOOK = "webhook"  # the generic JSON alert
    MONITOR = "monitor"  # Fairlane's own drift monitor


class AlertEvent(BaseModel):
    """One alert, normalised."""

    model: str = Field(description="the registered model the alert is about")
    source: AlertSource
    fingerprint: str = Field(min_length=1, max_length=200)
    status: AlertStatus
    name: str = Field(min_length=1, max_length=200, description="e.g. Alertmanager's alertname")
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    summary: str = Field(default="", max_length=4000)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generator_url: str | None = None


class AlertDelivery(BaseModel):
    """The alerts of one HTTP delivery that concern one model, as the API accepted them."""

    delivery_id: str = Field(description="unique per accepted request, for the trail")
    sender: str = Field(description="the alert_source principal that posted it")
    received_at: datetime
    alerts: list[AlertEvent] = Field(min_length=1)


class AlertKind(StrEnum):
    """What an alert meant, given the alerts the watch already held."""

    NEW = "new"  # first firing of this fingerprint
    REPEAT = "repeat"  # same fingerprint and starts_at, same status: a re-delivery
    RESOLVED = "resolved"  # a held firing alert has resolved
    REFIRED = "refired"  # same fingerprint, a new starts_at after it had resolved
    STALE = "stale"  # resolved, for an alert the watch never saw firing (or older episode)

"""Inputs and outputs of the step activities (the workflow <-> activity boundary)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from contracts.routing import RouteUpdate
from contracts.targets import RoutedTo


class ReadRouteInput(RoutedTo):
    model: str


class SetRouteInput(RoutedTo):
    model: str
    update: RouteUpdate


class Notification(BaseModel):
    incident_id: str
    channel: str
    severity: str
    subject: str = Field(min_length=1)
    message: str = Field(min_length=1)


class NotificationReceipt(BaseModel):
    delivered_to: str  # "webhook" or "log"
    status_code: int | None = None
    idempotency_key: str | None = None


# Activity type names: the workflow calls activities by name, so workflow code never
# imports the modules that do I/O.
READ_ROUTE = "read_route"
SET_ROUTE = "set_route"
SEND_NOTIFICATION = "send_notification"
RECORD_AUDIT_EVENT = "record_audit_event"
RECORD_AUDIT_EVENTS = "record_audit_events"

"""Inputs and outputs of the step activities (the workflow <-> activity boundary)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from contracts.channels import ChannelRef, NotificationEvent
from contracts.routing import Route, RouteSpec, RouteUpdate, Serving
from contracts.targets import RoutedTo


class ReadRouteInput(RoutedTo):
    model: str


class TargetRoute(Route):
    """A route as a routing target answered a read, with the target's revision of it.

    ``revision`` is an opaque token of the content read (a flag-file target: the sha256
    of the model's flag definition). A write names it back (``expected_revision``) so
    the target refuses to overwrite a route someone else changed since it was read, even
    by hand and without a new generation. Targets with generations alone (the gateway)
    leave it ``None``.
    """

    revision: str | None = None


class SetRouteInput(RoutedTo):
    model: str
    update: RouteUpdate
    expected_revision: str | None = Field(
        default=None,
        description="the revision the route was read at; a target with revisions refuses "
        "the write (StaleRoute) if its route is no longer at it",
    )


class VerifyRouteInput(RoutedTo):
    """Ask the target again, after a containment, whether it really serves the fallback."""

    model: str
    expected: RouteSpec
    generation: int = Field(ge=0, description="the generation the write created (or found)")


class ProbeAnswer(BaseModel):
    """What the target answered to the operator's declared probe request: one live decision."""

    served_by: Serving
    version: str
    decision_id: int | str | None = None  # a string since the shared decision log


class RouteVerification(BaseModel):
    """The target's own answer after a containment: its route, read again, and (when the
    operator declared a probe for this model at this target) who served a live request."""

    target: str
    route: Route
    probe: ProbeAnswer | None = None


class Notification(BaseModel):
    incident_id: str
    channel: str
    severity: str
    subject: str = Field(min_length=1)
    message: str = Field(min_length=1)
    to: ChannelRef | None = Field(
        default=None,
        description="a declared channel; None: the legacy webhook (or the log sink)",
    )
    event: NotificationEvent = "message"


class NotificationReceipt(BaseModel):
    delivered_to: str  # "webhook", "log", or the channel ("email:legal-team")
    status_code: int | None = None
    idempotency_key: str | None = None


# Activity type names: the workflow calls activities by name, so workflow code never
# imports the modules that do I/O.
READ_ROUTE = "read_route"
SET_ROUTE = "set_route"
VERIFY_ROUTE = "verify_route"
SEND_NOTIFICATION = "send_notification"
RECORD_AUDIT_EVENT = "record_audit_event"
RECORD_AUDIT_EVENTS = "record_audit_events"

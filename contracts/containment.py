"""Containment as a promise: its state on the incident, and the commander's stand-down.

A ``route`` step to the fallback (and a rollback to the fallback) does not give up
when its retry budget runs out: it escalates, says so in the incident's state and on
the trail, and keeps trying with capped backoff until the router confirms the route.
Only an incident commander can end that early, with a reason, through the API; the
API checks the role, and the incident's update validator checks it again.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from contracts.decisions import DecisionProof
from contracts.routing import Route
from contracts.targets import RoutedTo

UPDATE_STAND_DOWN = "stand_down_containment"
STAND_DOWN_ROLE = "incident_commander"
"""The only role that may stop Fairlane from trying to contain a model."""
ESCALATION_NOTICE = "containment-failing"
"""The notification subject tag an escalation about failing containment carries."""


class ContainmentStatus(BaseModel):
    """Where the incident's current (or last) containment stands.

    ``failing_since`` is set while the retry budget is spent and Fairlane keeps trying:
    the "containment failing since …" an incident commander sees at 3 a.m.
    """

    step: str
    started_at: datetime
    failing_since: datetime | None = None
    last_error: str | None = None
    refusals: int = Field(default=0, description="attempts the router refused (4xx) since")
    confirmed_at: datetime | None = None
    stood_down_by: str | None = None
    stood_down_reason: str | None = None

    @property
    def in_progress(self) -> bool:
        return self.confirmed_at is None and self.stood_down_by is None


class StandDown(BaseModel):
    """A commander's order to stop trying to contain, sent by the API after it authenticated."""

    principal: str = Field(min_length=1)
    principal_roles: list[str]
    reason: str = Field(min_length=1, max_length=2000)
    proof: DecisionProof | None = Field(default=None, description="the API's signature")

    def signed_fields(self) -> dict[str, str | None]:
        return {"reason": self.reason}


class StandDownReceipt(BaseModel):
    accepted: bool
    step: str
    failing_since: datetime | None


CONTAIN_ROUTE = "contain_route"
"""The watch's containment in one activity: read, set the fallback if needed, verify."""


class ContainRouteInput(RoutedTo):
    """Put ``model`` on its fallback, its model in shadow, as ``updated_by`` because ``reason``."""

    model: str
    updated_by: str
    reason: str = Field(max_length=2000)


class ContainedRoute(BaseModel):
    """The route before containment (what a false alarm restores) and as the target confirmed it."""

    before: Route
    after: Route

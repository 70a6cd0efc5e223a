"""The model watch: one long-running workflow per model that alerts and the monitor go through.

Why one workflow per model: deduplication needs a single, atomic place that knows
whether the model already has an open incident. The API delivers alerts with
signal-with-start on ``watch-<model>``, so the first alert of a storm starts the
watch and every later one queues in the same history; the watch contains the model
and opens *one* incident, attaches every later alert to it, and learns from the
incident itself (a signal) when it has closed. The built-in drift monitor runs in
the same workflow, so a monitor breach and an external alert racing each other
still open one incident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from contracts.alerts import AlertEvent, AlertKind, AlertSource, AlertStatus
from contracts.monitoring import DriftReference, MonitorEvaluation, MonitoringPolicy
from contracts.routing import Route
from contracts.severity import Severity
from contracts.targets import RoutedTo

WATCH_WORKFLOW = "ModelWatchWorkflow"
SIGNAL_ALERTS = "alerts"
SIGNAL_ARM_MONITOR = "arm_monitor"
SIGNAL_DISARM_MONITOR = "disarm_monitor"
SIGNAL_INCIDENT_CLOSED = "incident_closed"
SIGNAL_MANIFEST = "manifest"  # the model's registered manifest, at every registration
SIGNAL_ALERTS_ATTACHED = "alerts_attached"  # sent by the watch to the open incident
QUERY_WATCH = "watch"
EVALUATE_WINDOW = "evaluate_monitor_window"
OPEN_INCIDENT = "open_incident"
ARM_MONITOR = "arm_monitor"

HELD_ALERTS_LIMIT = 1000
"""Alerts a watch remembers for diffing; the least recently seen are forgotten first."""
RECENT_LIMIT = 20
"""Evaluations and incidents a watch keeps in its queryable state."""


def watch_workflow_id(model: str) -> str:
    """The watch's id: fixed per model, which is what makes signal-with-start atomic."""
    return f"watch-{model}"


class MonitorArm(BaseModel):
    """Start (or re-configure) the model's drift monitor."""

    actor: str = Field(min_length=1)
    reason: str = Field(default="", max_length=2000)
    policy: MonitoringPolicy


class ArmMonitorInput(BaseModel):
    """The ``arm_monitor`` activity's input (a playbook's ``monitor`` step)."""

    model: str
    arm: MonitorArm


class MonitorDisarm(BaseModel):
    actor: str = Field(min_length=1)
    reason: str = Field(default="", max_length=2000)


class IncidentClosed(BaseModel):
    """Sent by an incident the watch opened, as it finishes."""

    incident_id: str
    phase: str
    outcome: str


class HeldAlert(BaseModel):
    """What the watch remembers of one alert, for diffing the next delivery."""

    fingerprint: str
    name: str
    source: AlertSource
    starts_at: datetime
    status: AlertStatus
    last_seen: datetime
    deliveries: int = 1
    incident_id: str | None = None


class AlertCounts(BaseModel):
    received: int = 0
    new: int = 0
    repeat: int = 0
    resolved: int = 0
    refired: int = 0
    stale: int = 0

    def add(self, kind: AlertKind) -> None:
        self.received += 1
        setattr(self, kind.value, getattr(self, kind.value) + 1)


class ClassifiedAlert(BaseModel):
    """An alert and what it meant, as recorded on the trail and sent to the incident."""

    alert: AlertEvent
    kind: AlertKind
    delivery_id: str
    sender: str
    received_at: datetime


class AlertsAttached(BaseModel):
    """A batch of alerts the watch attached to the open incident."""

    alerts: list[ClassifiedAlert]


class IncidentTrigger(BaseModel):
    """Why a watch opened an incident, and the containment it already did."""

    source: AlertSource
    watch_workflow_id: str
    reason: str
    route_before: Route | None = Field(description="None if the router could not be read")
    route_after: Route | None = Field(description="None if the containment did not succeed")
    alerts: list[ClassifiedAlert] = Field(default_factory=list)
    evaluation: MonitorEvaluation | None = None


class OpenIncidentRequest(BaseModel):
    """The ``open_incident`` activity's input: start an incident workflow with this id."""

    incident_id: str
    model: str
    playbook: str
    severity: Severity
    summary: str
    commander: str
    opened_at: datetime
    trigger: IncidentTrigger


class IncidentRef(BaseModel):
    incident_id: str
    opened_at: datetime
    source: AlertSource
    reason: str
    closed_phase: str | None = None


class WatchMemory(BaseModel):
    """Everything a watch carries across continue-as-new."""

    monitor: MonitoringPolicy | None = None
    armed_by: str | None = None
    armed_at: datetime | None = None
    next_evaluation_at: datetime | None = None
    reference: DriftReference | None = None
    consecutive_breaches: int = 0
    open_incident: str | None = None
    incidents: list[IncidentRef] = Field(default_factory=list)
    held: dict[str, HeldAlert] = Field(default_factory=dict, description="by fingerprint")
    counts: AlertCounts = Field(default_factory=AlertCounts)
    evaluations: list[MonitorEvaluation] = Field(default_factory=list)
    runs: int = 1


class WatchSettings(RoutedTo):
    """What a watch takes from its model's manifest: the routing target it contains at, and
    the playbook and severity of the incidents it opens. Sent to the watch at every
    registration of the manifest, so a running watch follows a changed one."""

    default_playbook: str = "drift-rollback"
    default_severity: Severity = Severity.SEV2


class WatchInput(WatchSettings):
    model: str
    memory: WatchMemory = Field(default_factory=WatchMemory)
    bookkeeping_task_queue: str | None = Field(
        default=None,
        description="where the watch records each alert on the trail (the main task queue), "
        "so that its own worker's slots stay free for containing; None (watches started "
        "before this field): in the watch's own workflow task",
    )


class WatchState(BaseModel):
    """The watch as the API shows it."""

    model: str
    status: Literal["idle", "monitoring", "holding"] = Field(
        description="idle: no monitor armed; monitoring: evaluating on schedule; "
        "holding: an incident is open, the monitor waits for it to close"
    )
    memory: WatchMemory

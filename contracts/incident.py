"""The incident workflow's interface: its input, its state, and what humans send it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey

from contracts.analysis import Findings
from contracts.canary import CanaryStatus
from contracts.containment import ContainmentStatus
from contracts.decisions import DecisionKey, DecisionProof
from contracts.model import ModelManifest
from contracts.playbook.schema import Playbook
from contracts.routing import Route
from contracts.severity import Severity
from contracts.watch import AlertCounts, ClassifiedAlert, IncidentTrigger

WORKFLOW_TYPE = "IncidentWorkflow"
QUERY_STATE = "state"
UPDATE_SIGNOFF = "decide_signoff"

# Custom search attributes, registered on the namespace by `fairlane up` (or by an
# operator on a managed cluster), so incidents can be listed and filtered in
# Temporal's visibility and its Web UI.
SA_MODEL = SearchAttributeKey.for_keyword("FairlaneModel")
SA_SEVERITY = SearchAttributeKey.for_keyword("FairlaneSeverity")
SA_PHASE = SearchAttributeKey.for_keyword("FairlanePhase")
SA_PLAYBOOK = SearchAttributeKey.for_keyword("FairlanePlaybook")
SEARCH_ATTRIBUTES = (SA_MODEL, SA_SEVERITY, SA_PHASE, SA_PLAYBOOK)


class Phase(StrEnum):
    OPEN = "open"
    RUNNING = "running"
    AWAITING_SIGNOFF = "awaiting_signoff"
    RESOLVED = "resolved"
    ROLLED_BACK = "rolled_back"
    ESCALATED = "escalated"
    FAILED = "failed"

    @property
    def closed(self) -> bool:
        return self in {Phase.RESOLVED, Phase.ROLLED_BACK, Phase.ESCALATED, Phase.FAILED}


class IncidentInput(BaseModel):
    """Everything an incident needs, pinned at open time (playbook and model included)."""

    incident_id: str
    model: ModelManifest
    playbook: Playbook
    severity: Severity
    summary: str = Field(min_length=1, max_length=4000)
    commander: str = Field(description="principal who opened the incident")
    opened_at: datetime
    trigger: IncidentTrigger | None = Field(
        default=None,
        description="set when a model's watch opened the incident (an alert or a monitor "
        "breach), after containing the model",
    )
    decision_key: DecisionKey | None = Field(
        default=None,
        description="the public key human decisions must be signed with (the API's); an "
        "incident without one takes no human decision",
    )


class SignoffDecision(BaseModel):
    """A stakeholder's decision, sent by the API after it authenticated the caller."""

    principal: str = Field(min_length=1)
    principal_roles: list[str]
    role: str = Field(min_length=1)
    decision: Literal["approve", "reject"]
    comment: str = Field(default="", max_length=4000)
    assessment_digest: str | None = Field(
        default=None,
        description="the impact assessment the approver read, when the sign-off binds to one",
    )
    proof: DecisionProof | None = Field(default=None, description="the API's signature")

    def signed_fields(self) -> dict[str, str | None]:
        return {
            "role": self.role,
            "decision": self.decision,
            "assessment_digest": self.assessment_digest,
            "comment": self.comment,
        }


class Vote(BaseModel):
    principal: str
    decision: Literal["approve", "reject"]
    comment: str
    at: datetime


class RoleStatus(BaseModel):
    role: str
    quorum: int
    votes: list[Vote] = Field(default_factory=list)
    outcome: Literal["pending", "approved", "rejected"] = "pending"


class SignoffStatus(BaseModel):
    step: str
    subject: str
    roles: list[RoleStatus]
    deadline: datetime
    reminders_sent: int = 0
    escalated: bool = False
    assessment_digest: str | None = None
    outcome: Literal["pending", "approved", "rejected", "expired"] = "pending"


class SignoffReceipt(BaseModel):
    accepted: bool
    role: str
    role_outcome: str
    signoff_outcome: str


class StepRecord(BaseModel):
    name: str
    kind: str
    status: Literal["running", "succeeded", "failed", "skipped"]
    started_at: datetime
    finished_at: datetime | None = None
    detail: str = ""


class AttachedAlerts(BaseModel):
    """The alerts the model's watch attached to this incident (every one is on the trail)."""

    counts: AlertCounts = Field(default_factory=AlertCounts)
    firing: list[str] = Field(default_factory=list, description="fingerprints still firing")
    recent: list[ClassifiedAlert] = Field(default_factory=list, description="the latest ones")


class IncidentState(BaseModel):
    incident_id: str
    model: str
    playbook: str
    playbook_version: str
    severity: Severity
    summary: str
    commander: str
    opened_at: datetime
    phase: Phase
    current_step: str | None = None
    contained: bool = False
    containment: ContainmentStatus | None = Field(
        default=None, description="the latest containment: failing since when, stood down by whom"
    )
    route_before: Route | None = None
    route_now: Route | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    signoff: SignoffStatus | None = None
    findings: Findings = Field(default_factory=Findings)
    canary: CanaryStatus | None = None
    trigger: IncidentTrigger | None = None
    alerts: AttachedAlerts = Field(default_factory=AttachedAlerts)
    outcome: str | None = None

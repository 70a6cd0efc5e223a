"""The canary's interface: the ramp-step workflow, its analysis activity, and manual control.

The incident workflow runs each ramp step as a child workflow (its own history,
continued as new when it grows), so a ramp of any length keeps every history
bounded. Commanders reach the ramp through the incident (an update, audited there),
which forwards the control to the running step as a signal.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from contracts.decisions import DecisionKey, DecisionProof
from contracts.fairness import LiveThresholds, MetricVerdict, WindowAnalysis
from contracts.playbook.canary import CanaryStep
from contracts.routing import RouteSpec
from contracts.targets import RoutedTo

CANARY_STEP_WORKFLOW = "CanaryStepWorkflow"
RETIRE_SHADOW_WORKFLOW = "RetireShadowWorkflow"
CANARY_ANALYSIS = "canary_analysis"
DEPLOY_VERSION = "deploy_version"
UPDATE_CANARY_CONTROL = "control_canary"
SIGNAL_CANARY_CONTROL = "canary_control"
QUERY_CANARY_PROGRESS = "progress"
CONTROLLER_ROLE = "incident_commander"
"""The only role that may pause, resume, promote or abort a canary."""


class ControlAction(StrEnum):
    PAUSE = "pause"  # the bake clock stops; analyses (and automatic rollback) go on
    RESUME = "resume"
    PROMOTE = "promote"  # skip the rest of this step's bake
    PROMOTE_FULL = "promote_full"  # skip every remaining step: straight to 100% and promotion
    ABORT = "abort"  # roll back now


class CanaryControl(BaseModel):
    """A commander's control, sent by the API after it authenticated the caller."""

    principal: str = Field(min_length=1)
    principal_roles: list[str]
    action: ControlAction
    reason: str = Field(min_length=1, max_length=2000)
    proof: DecisionProof | None = Field(default=None, description="the API's signature")

    def signed_fields(self) -> dict[str, str | None]:
        return {"action": self.action.value, "reason": self.reason}


class ControlReceipt(BaseModel):
    accepted: bool
    action: ControlAction
    ramp_step: int
    percent: float


class AnalysisRequest(RoutedTo):
    """One look at the live decisions of a ramp step so far."""

    incident_id: str
    model: str
    provider: str
    candidate_version: str
    since: datetime
    until: datetime
    look: int = Field(ge=1)
    alpha: float = Field(gt=0, lt=1, description="family-wise alpha spent on this look")
    thresholds: LiveThresholds


class CanaryAnalysis(BaseModel):
    """The evidence of one look: enough for an auditor to re-derive every verdict."""

    look: int
    since: datetime
    until: datetime
    provider: str
    decisions: int
    analysis: WindowAnalysis

    @property
    def verdict(self) -> MetricVerdict:
        return self.analysis.verdict


class DeployVersionInput(RoutedTo):
    model: str
    version: str
    artifact: str
    sha256: str | None = None  # the registry's digest: the router refuses any other file


class RetireShadowInput(RoutedTo):
    """After a promotion: stop shadow-scoring the replaced version once ``after`` has passed."""

    incident_id: str
    model: str
    version: str
    primary_version: str = Field(description="retire only while this is still the primary")
    after: timedelta


class RampStepInput(RoutedTo):
    """What a ramp-step workflow needs; ``progress`` carries state across continue-as-new."""

    incident_id: str
    model: str
    candidate_version: str
    canary: CanaryStep
    ramp_index: int = Field(ge=0)
    percent: float
    started_at: datetime
    progress: RampStepProgress | None = None
    decision_key: DecisionKey | None = Field(
        default=None, description="the incident's: controls signalled here must be signed with it"
    )


class RampStepProgress(BaseModel):
    """Where a ramp step stands; queryable while it runs."""

    ramp_index: int
    percent: float
    started_at: datetime
    bake_target: timedelta = Field(description="the bake, plus any extensions so far")
    baked: timedelta = Field(default=timedelta(0), description="bake time before the clock ran")
    clock_running_since: datetime | None = Field(default=None, description="None while paused")
    time_left: timedelta | None = None
    paused_by: str | None = None
    extensions: int = 0
    looks: int = 0
    passes: int = 0
    breaches: int = 0
    inconclusive: int = 0
    runs: int = Field(default=1, description="histories this step has used (continue-as-new)")
    last_look_at: datetime | None = None
    latest: CanaryAnalysis | None = None
    samples_needed: dict[str, int] = Field(default_factory=dict)


class RampStepOutcome(BaseModel):
    result: Literal["passed", "promoted", "promoted_full", "breached", "inconclusive", "aborted"]
    detail: str
    by: str | None = None
    progress: RampStepProgress


class RampStepSummary(BaseModel):
    ramp_index: int
    percent: float
    result: str
    detail: str
    looks: int
    started_at: datetime
    finished_at: datetime


class CanaryStatus(BaseModel):
    """The incident's view of its ramp; ``live`` is the running step's own progress."""

    step: str
    candidate_version: str
    stable: RouteSpec
    ramp: list[float]
    ramp_index: int = 0
    percent: float = 0.0
    state: Literal["ramping", "rolled_back", "aborted", "inconclusive", "promoted"] = "ramping"
    paused: bool = False
    step_workflow_id: str | None = None
    completed: list[RampStepSummary] = Field(default_factory=list)
    breach: CanaryAnalysis | None = None
    promoted_at: datetime | None = None
    shadow_until: datetime | None = None
    live: RampStepProgress | None = None


RampStepInput.model_rebuild()

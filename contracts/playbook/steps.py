"""Every kind of playbook step, and the discriminated union the playbook holds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from contracts.channels import ChannelRef
from contracts.durations import Duration
from contracts.monitoring import MonitoringPolicy
from contracts.playbook.base import (
    KEEP_TRYING_EVERY,
    StepBase,
    Strict,
    TimeoutSpec,
    long_computation,
)
from contracts.playbook.canary import CanaryStep
from contracts.routing import Serving

_PLACEHOLDER = re.compile(r"{(\w+)}")
DEFAULT_SIGNOFF_ROLES = ("legal", "compliance", "executive", "communications")
MESSAGE_FIELDS = ("incident_id", "model", "severity", "summary", "playbook")


class RouteStep(StepBase):
    """Set the model's route at its router (e.g. contain: fallback, primary in shadow)."""

    kind: Literal["route"]
    serving: Serving
    shadow_primary: bool = Field(
        default=True, description="keep the primary version scoring in shadow"
    )
    canary_percent: float = Field(default=0.0, ge=0.0, le=100.0)
    keep_trying_every: Duration = Field(
        default=KEEP_TRYING_EVERY,
        description="containment only: once the retry budget is spent, the step escalates "
        "and keeps trying, waiting at most this long between attempts",
    )

    @property
    def contains(self) -> bool:
        """A step to the fallback is containment: a promise, not an attempt."""
        return self.serving is Serving.FALLBACK

    @model_validator(mode="after")
    def _bounded_backoff(self) -> RouteStep:
        if not timedelta(seconds=1) <= self.keep_trying_every <= timedelta(minutes=10):
            raise ValueError("keep_trying_every must be between 1s and 10m")
        return self


class NotifyStep(StepBase):
    """Tell people: on each channel in ``to`` (declared by the operator), or else the
    webhook when one is configured, a log sink otherwise."""

    kind: Literal["notify"]
    timeouts: TimeoutSpec = Field(
        default_factory=lambda: TimeoutSpec(start_to_close=timedelta(seconds=10)),
        description="one short HTTP call: a worker lost mid-send is retried within seconds",
    )
    channel: str = "incident"
    message: str = Field(min_length=1, description="may use the MESSAGE_FIELDS placeholders")
    to: list[ChannelRef] = Field(
        default_factory=list,
        max_length=20,
        description="declared channels, e.g. [{kind: slack, id: incident-room}]; each gets "
        "the message as its own activity",
    )

    @model_validator(mode="after")
    def _known_placeholders(self) -> NotifyStep:
        unknown = set(_PLACEHOLDER.findall(self.message)) - set(MESSAGE_FIELDS)
        if unknown:
            raise ValueError(
                f"message uses unknown placeholders {sorted(unknown)}; "
                f"known: {list(MESSAGE_FIELDS)}"
            )
        return self


class SignoffRole(Strict):
    role: str = Field(min_length=1)
    quorum: int = Field(default=1, ge=1, le=50)
    notify: list[ChannelRef] = Field(
        default_factory=list,
        max_length=20,
        description="where this role's approvers are told: the request and each reminder "
        "while the role is pending",
    )


class SignoffStep(StepBase):
    """Wait for stakeholders to approve or reject; a rejection is a step failure."""

    kind: Literal["signoff"]
    subject: str = Field(min_length=1, description="what the approvers are asked to confirm")
    roles: list[SignoffRole] = Field(
        default_factory=lambda: [SignoffRole(role=r) for r in DEFAULT_SIGNOFF_ROLES],
        min_length=1,
    )
    deadline: Duration = timedelta(hours=72)
    reminder_every: Duration | None = timedelta(hours=12)
    on_expiry: Literal["reject", "escalate"] = Field(
        default="reject",
        description="reject: expiry counts as a rejection; escalate: notify and keep waiting",
    )
    commander_may_approve: bool = False
    bind_to_assessment: bool = Field(
        default=False,
        description="decisions must name the digest of the incident's latest impact assessment",
    )

    @model_validator(mode="after")
    def _roles_unique(self) -> SignoffStep:
        names = [r.role for r in self.roles]
        if len(set(names)) != len(names):
            raise ValueError(f"roles are listed more than once: {names}")
        if self.reminder_every is not None and self.reminder_every >= self.deadline:
            raise ValueError("reminder_every must be shorter than the deadline")
        return self


class ProvenanceAuditStep(StepBase):
    """T: who is in the training data, how labels differ by group, which features are proxies."""

    kind: Literal["provenance_audit"]
    timeouts: TimeoutSpec = Field(default_factory=long_computation)
    min_group_size: int = Field(default=30, ge=1)
    proxy_nmi: float = Field(default=0.10, gt=0, le=1, description="NMI that makes a suspect")
    proxy_auc: float = Field(default=0.70, gt=0.5, le=1, description="single-feature AUC")
    reference_population: dict[str, dict[str, float]] | None = Field(
        default=None, description="attribute -> value -> share in the population served"
    )


class AttributionAuditStep(StepBase):
    """H: SHAP attribution of the serving model, and which features drive the gap."""

    kind: Literal["attribution_audit"]
    timeouts: TimeoutSpec = Field(default_factory=long_computation)
    outcome: Literal["decision", "amount"] | None = Field(
        default=None,
        description="the outcome model explained; unset: the amount when the model sets "
        "one, else its decision (a runbook shared by models of either shape)",
    )
    sample_size: int = Field(default=2000, ge=50, le=200_000)
    top_k: int = Field(default=3, ge=1, le=50)


AuditStep = Annotated[ProvenanceAuditStep | AttributionAuditStep, Field(discriminator="kind")]


class ParallelAuditsStep(StepBase):
    """Run independent audits at the same time; the step fails if any of them fails."""

    kind: Literal["parallel"]
    timeouts: TimeoutSpec = Field(default_factory=long_computation)
    steps: list[AuditStep] = Field(min_length=2)


class RemediationStrategy(Strict):
    name: Literal[
        "drop_proxies", "transform_proxies", "reweigh", "constrained", "threshold", "external"
    ]
    constraint: Literal["equalized_odds", "demographic_parity"] | None = None
    include_suspected: bool = Field(
        default=False, description="treat suspected (not only confirmed) proxies as proxies"
    )
    webhook_url: str | None = Field(default=None, pattern=r"^https?://")

    @model_validator(mode="after")
    def _parameters_fit(self) -> RemediationStrategy:
        if self.name == "constrained" and self.constraint is None:
            raise ValueError("constrained needs `constraint`: equalized_odds or demographic_parity")
        if self.name == "external" and self.webhook_url is None:
            raise ValueError(
                "external needs `webhook_url`: the training pipeline to post the job to"
            )
        return self


class RemediateStep(StepBase):
    """I: produce a fairer candidate version, registered with its lineage."""

    kind: Literal["remediate"]
    timeouts: TimeoutSpec = Field(default_factory=long_computation)
    strategies: list[RemediationStrategy] = Field(
        default_factory=lambda: [
            RemediationStrategy(name="drop_proxies"),
            RemediationStrategy(name="reweigh"),
            RemediationStrategy(name="constrained", constraint="equalized_odds"),
        ],
        min_length=1,
    )
    max_accuracy_loss: float = Field(default=0.02, ge=0, le=1)
    external_timeout: Duration = timedelta(hours=24)


class Gates(Strict):
    """Sandbox gates; each judged with its confidence interval, small groups inconclusive."""

    min_disparate_impact_ratio: float = Field(default=0.8, gt=0, le=1)
    max_equalized_odds_difference: float = Field(default=0.05, ge=0, le=1)
    max_conditional_amount_disparity: float = Field(default=0.015, ge=0, le=1)
    max_accuracy_loss: float = Field(default=0.02, ge=0, le=1)
    min_group_size: int = Field(default=30, ge=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    bootstrap_samples: int = Field(default=400, ge=50, le=10_000)


class SandboxValidateStep(StepBase):
    """C: candidate against the current model on held-out and counterfactual data, gated."""

    kind: Literal["sandbox_validate"]
    timeouts: TimeoutSpec = Field(default_factory=long_computation)
    gates: Gates = Field(default_factory=Gates)


class ImpactAssessmentStep(StepBase):
    """A: the Algorithmic Impact Assessment, content-addressed, that sign-offs bind to."""

    kind: Literal["impact_assessment"]
    timeouts: TimeoutSpec = Field(default_factory=long_computation)


class MonitorStep(StepBase):
    """Arm the model's drift monitor (after a promotion, on the version now serving).

    Without a ``policy`` the monitor uses the one in the model's manifest.
    """

    kind: Literal["monitor"]
    policy: MonitoringPolicy | None = None


Step = Annotated[
    RouteStep
    | NotifyStep
    | SignoffStep
    | ProvenanceAuditStep
    | AttributionAuditStep
    | ParallelAuditsStep
    | RemediateStep
    | SandboxValidateStep
    | ImpactAssessmentStep
    | CanaryStep
    | MonitorStep,
    Field(discriminator="kind"),
]
STEP_KINDS = (
    "route",
    "notify",
    "signoff",
    "provenance_audit",
    "attribution_audit",
    "parallel",
    "remediate",
    "sandbox_validate",
    "impact_assessment",
    "canary",
    "monitor",
)

"""A model's monitoring policy, and what one evaluation of its live decisions found.

The drift monitor judges rolling windows of a model's live decisions with the same
machinery as the canary (:mod:`fairness.live`: intervals, minimum samples, Bonferroni),
plus population-stability drift per group against a reference window
(:mod:`fairness.drift`). It acts only after ``consecutive_breaches`` breaching
evaluations in a row, because a model in production is judged forever and a single
look at alpha would, sooner or later, cry wolf.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.durations import Duration
from contracts.fairness import LiveThresholds, MetricVerdict, WindowAnalysis
from contracts.severity import Severity
from contracts.targets import RoutedTo

MONITOR_THRESHOLDS = LiveThresholds(max_approval_rate_shift=None, max_error_rate_increase=None)
"""The canary's thresholds without its guards: a monitored model has no stable side to
be compared with, only its groups to be compared with each other."""


class MonitoringPolicy(BaseModel):
    """Tolerance bands and cadence of a model's drift monitor (part of its manifest)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: Duration = Field(
        default=timedelta(hours=24), gt=timedelta(0), description="length of the rolling window"
    )
    interval: Duration = Field(
        default=timedelta(hours=1), gt=timedelta(0), description="time between evaluations"
    )
    thresholds: LiveThresholds = Field(
        default=MONITOR_THRESHOLDS,
        description="the fairness bands, per pair of groups; guards comparing a candidate "
        "with a stable side do not apply and must stay off",
    )
    max_psi: float | None = Field(
        default=0.25,
        gt=0,
        description="largest allowed population-stability index per group against the "
        "reference window, for the applicant mix over strata (feature drift) and for the "
        "decisions (prediction drift); None switches drift off",
    )
    min_drift_samples: int = Field(
        default=500, ge=1, description="decisions per group, in both windows, before PSI counts"
    )
    alpha: float = Field(
        default=0.01, gt=0, lt=1, description="family-wise alpha of one evaluation's fairness tests"
    )
    consecutive_breaches: int = Field(
        default=2, ge=1, description="breaching evaluations in a row before the monitor acts"
    )
    playbook: str = Field(
        default="drift-rollback",
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="the playbook of the incident a breach or a firing alert opens",
    )
    severity: Severity = Severity.SEV2
    provider: str = Field(default="decision_log", description="the metrics provider to read")
    history_limit: int = Field(
        default=2000, ge=200, description="history events before the watch continues as new"
    )

    @model_validator(mode="after")
    def _no_guards(self) -> MonitoringPolicy:
        t = self.thresholds
        if t.max_approval_rate_shift is not None or t.max_error_rate_increase is not None:
            raise ValueError(
                "thresholds.max_approval_rate_shift and thresholds.max_error_rate_increase "
                "compare a canary with its stable side; a monitor has none: set them to null"
            )
        if self.interval > self.window:
            raise ValueError(
                "interval is longer than window: decisions between windows would go unseen"
            )
        return self


class DriftKind(StrEnum):
    FEATURE = "feature"  # the group's applicants over income x credit strata
    PREDICTION = "prediction"  # the group's decisions: approved or declined


class DriftResult(BaseModel):
    """Population stability of one group, current window against the reference."""

    model_config = ConfigDict(frozen=True)

    group: str
    kind: DriftKind
    psi: float | None
    null_psi: float | None = Field(
        description="PSI expected from sampling noise alone at these sample sizes; a breach "
        "needs psi above max_psi plus this"
    )
    reference_n: int
    current_n: int
    threshold: float
    verdict: MetricVerdict
    reason: str


class DriftReference(BaseModel):
    """The distributions the monitor compares against, per group: set by the first
    conclusive window after arming, kept across continue-as-new."""

    since: datetime
    until: datetime
    strata: dict[str, dict[str, int]] = Field(description="group -> stratum -> decisions")
    decisions: dict[str, dict[str, int]] = Field(
        description="group -> 'approved'|'declined' -> decisions"
    )


class MonitorEvaluation(BaseModel):
    """One look of the drift monitor: the evidence a containment carries."""

    at: datetime
    since: datetime
    until: datetime
    provider: str
    decisions: int
    verdict: MetricVerdict
    headline: str
    fairness: WindowAnalysis
    drift: list[DriftResult] = Field(default_factory=list)
    consecutive_breaches: int = 0
    action: Literal["none", "contained", "held"] = "none"


class EvaluationRequest(RoutedTo):
    """The monitor activity's input: one window, judged against the policy."""

    model: str
    since: datetime
    until: datetime
    policy: MonitoringPolicy
    reference: DriftReference | None = None


class EvaluationResult(BaseModel):
    evaluation: MonitorEvaluation
    reference: DriftReference | None = Field(
        description="the reference after this look: the request's, or this window when "
        "there was none and every group had enough decisions"
    )

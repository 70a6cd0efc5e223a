"""The `canary` step kind (L of the runbook): a fairness-gated ramp of the candidate.

Argo Rollouts and Flagger have steps, pauses, analysis runs with failure limits,
abort and promote; this step has the same controls, but every analysis judges
fairness per demographic group with confidence intervals (see :mod:`fairness.live`)
and spends its false-alarm budget across repeated looks (:mod:`fairness.sequential`).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from contracts.channels import ChannelRef
from contracts.durations import Duration
from contracts.fairness import LiveThresholds
from contracts.playbook.base import StepBase

DEFAULT_RAMP = (1.0, 5.0, 25.0, 50.0, 100.0)


class CanaryStep(StepBase):
    """Ramp the incident's candidate through the router's sticky canary, baking at each step."""

    kind: Literal["canary"]
    candidate_version: str | None = Field(
        default=None,
        description="ramp this version of the model's manifest; by default, the candidate "
        "the incident's remediate step produced",
    )
    ramp: list[float] = Field(
        default_factory=lambda: list(DEFAULT_RAMP),
        min_length=1,
        description="canary percentages, strictly increasing, ending at 100",
    )
    bake: Duration = Field(
        default=timedelta(days=7), description="bake time per step (a rolling 7-day cycle)"
    )
    analysis_interval: Duration = timedelta(hours=1)
    extend_by: Duration = Field(
        default=timedelta(days=1),
        description="how much longer a bake runs when its evidence is still short at the end",
    )
    inconclusive_limit: int = Field(
        default=3,
        ge=0,
        le=100,
        description="bake extensions allowed per step; beyond them the step fails inconclusive",
    )
    failure_limit: int = Field(
        default=0,
        ge=0,
        le=100,
        description="breaching analyses tolerated per step before rolling back (0: the first)",
    )
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="the false-rollback rate allowed over the whole ramp",
    )
    metrics: LiveThresholds = Field(default_factory=LiveThresholds)
    metrics_provider: Literal["decision_log", "manifest", "gateway", "prometheus", "ingest"] = (
        "decision_log"  # the model's declared decision source (activities/providers.py)
    )
    rollback_to: Literal["fallback", "stable"] = Field(
        default="fallback",
        description="on breach or abort: the rules-based fallback, or the route before the ramp",
    )
    shadow_period: Duration = Field(
        default=timedelta(days=30),
        description="after promotion, how long the replaced version keeps scoring in shadow",
    )
    to: list[ChannelRef] = Field(
        default_factory=list,
        max_length=20,
        description="declared channels told of the rollback (a PagerDuty channel is paged), "
        "the promotion and each pause and resume; without them a rollback is an escalation "
        "and goes to the playbook's escalate_to",
    )
    history_limit: int = Field(
        default=2000,
        ge=200,
        le=40_000,
        description="events in one ramp step's history before it continues as new",
    )

    @model_validator(mode="after")
    def _ramp_consistent(self) -> CanaryStep:
        ramp = self.ramp
        if any(not 0 < percent <= 100 for percent in ramp):
            raise ValueError(f"ramp percentages must lie in (0, 100], got {ramp}")
        if any(b <= a for a, b in itertools.pairwise(ramp)):
            raise ValueError(f"ramp percentages must be strictly increasing, got {ramp}")
        if ramp[-1] != 100:
            raise ValueError(f"the ramp must end at 100 (promotion), got {ramp[-1]:g}")
        if self.analysis_interval > self.bake:
            raise ValueError("analysis_interval must not be longer than bake")
        if self.analysis_interval <= timedelta(0) or self.extend_by <= timedelta(0):
            raise ValueError("analysis_interval and extend_by must be positive")
        return self

    def planned_looks(self) -> int:
        """Analyses a step runs at most without pauses: its bake and every extension."""
        longest = self.bake + self.extend_by * self.inconclusive_limit
        return max(1, -(-longest // self.analysis_interval))

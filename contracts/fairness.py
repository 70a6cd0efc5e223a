"""What the fairness maths hands across a boundary: intervals, live thresholds, verdicts.

The live canary analysis and the drift monitor (:mod:`fairness.live`) judge windows
of decisions; their thresholds are part of a playbook or a manifest, and their
results travel through workflow histories and HTTP bodies. Those data types live
here, with no maths attached, so a workflow, an API body or a playbook can name them
without importing numpy or scipy (the computations stay in :mod:`fairness`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Interval(BaseModel):
    """A point estimate and its two-sided confidence interval.

    ``upper`` may be infinite (a ratio whose denominator group had no successes), so
    JSON keeps infinities as the ``Infinity`` constant rather than losing them as null.
    """

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="constants")

    estimate: float
    lower: float
    upper: float
    confidence: float
    method: str

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if not self.lower <= self.estimate <= self.upper:
            raise ValueError(
                f"interval must satisfy lower <= estimate <= upper, got "
                f"{self.lower} <= {self.estimate} <= {self.upper}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence}")
        return self

    def contains(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    def clipped(self, low: float, high: float) -> Interval:
        """The same interval cut to a statistic's natural range (a gap lies in [0, 1])."""
        lower = min(max(self.lower, low), high)
        upper = max(min(self.upper, high), low)
        return self.model_copy(update={"lower": lower, "upper": upper})


class LiveThresholds(BaseModel):
    """What the live canary checks and how much evidence a verdict needs (a playbook section).

    A threshold of None switches its metric off. Defaults follow the four-fifths rule
    for selection rates and a 5% tolerance for amounts at equal income and credit.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_disparate_impact_ratio: float | None = Field(
        default=0.8,
        gt=0,
        le=1,
        description="lowest allowed ratio of approval rates, worse-off group over better-off "
        "(the four-fifths rule), for every pair of groups",
    )
    max_demographic_parity_difference: float | None = Field(
        default=0.10,
        ge=0,
        le=1,
        description="largest allowed absolute difference in approval rates between two groups",
    )
    max_equalized_odds_difference: float | None = Field(
        default=0.10,
        ge=0,
        le=1,
        description="largest allowed absolute difference in true-positive rate and in "
        "false-positive rate between two groups; needs outcomes (advisory until they arrive)",
    )
    min_group_mean_ratio: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="lowest allowed ratio of mean approved amounts between two groups, with no "
        "control for income or credit; off by default because groups differ in income",
    )
    max_conditional_disparity: float | None = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="largest allowed relative gap in mean approved amount of the worse-off "
        "group, compared inside strata of comparable applicants (income and credit band)",
    )
    max_approval_rate_shift: float | None = Field(
        default=0.15,
        ge=0,
        le=1,
        description="guard: largest allowed absolute change in approval rate, candidate versus "
        "stable, all groups pooled",
    )
    max_error_rate_increase: float | None = Field(
        default=0.05,
        ge=-1,
        le=1,
        description="guard: largest allowed increase in error rate (approved a bad outcome or "
        "declined a good one), candidate minus stable; needs outcomes (advisory)",
    )
    min_samples_per_group: int = Field(
        default=200,
        ge=1,
        description="candidate decisions each group needs before a comparison is judged (a "
        "guard needs as many on each side in total); below it, inconclusive",
    )
    min_outcomes_per_group: int = Field(
        default=50,
        ge=1,
        description="decisions with a known outcome of the needed kind (good for the "
        "true-positive rate, bad for the false-positive rate) each group needs",
    )
    min_stratum_count: int = Field(
        default=5,
        ge=1,
        description="approved decisions each group needs inside a stratum for that stratum to "
        "count in the conditional disparity",
    )


class LiveMetric(StrEnum):
    DISPARATE_IMPACT_RATIO = "disparate_impact_ratio"
    DEMOGRAPHIC_PARITY_DIFFERENCE = "demographic_parity_difference"
    EQUALIZED_ODDS_TPR_DIFFERENCE = "equalized_odds_tpr_difference"
    EQUALIZED_ODDS_FPR_DIFFERENCE = "equalized_odds_fpr_difference"
    GROUP_MEAN_RATIO = "group_mean_ratio"
    CONDITIONAL_DISPARITY = "conditional_disparity"
    APPROVAL_RATE_SHIFT = "approval_rate_shift"
    ERROR_RATE_INCREASE = "error_rate_increase"


class MetricVerdict(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    BREACH = "breach"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not_applicable"


class MetricResult(BaseModel):
    """One test of one look: a metric on a pair of groups, or a guard on candidate vs stable."""

    model_config = ConfigDict(frozen=True)

    metric: LiveMetric
    comparison: str = Field(description="'B/A' (ratio), 'B-A' (difference), 'candidate-stable'")
    counts: dict[str, int] = Field(description="the n behind the estimate, per group or side")
    estimate: float | None
    interval: Interval | None
    threshold: float
    bound: Literal["min", "max"]
    verdict: MetricVerdict
    reason: str
    samples_needed: int | None = Field(
        description="for an inconclusive result, about how many more samples per group (per "
        "side for a guard) would let the interval settle it; None when it cannot be told"
    )


class WindowAnalysis(BaseModel):
    """Every test of one look and the look's verdict (pass, breach or inconclusive)."""

    model_config = ConfigDict(frozen=True)

    verdict: MetricVerdict
    alpha: float = Field(description="family-wise alpha of this look")
    comparison_alpha: float = Field(description="alpha of each test, after Bonferroni")
    comparisons: int
    samples: dict[str, dict[str, int]] = Field(description="side -> group -> decisions")
    outcomes: dict[str, int] = Field(description="candidate group -> decisions with an outcome")
    results: list[MetricResult]
    samples_needed: dict[str, int] = Field(
        description="candidate group -> more decisions needed to settle the non-advisory "
        "tests (0 when enough)"
    )
    headline: str

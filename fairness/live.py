"""One look of the live canary analysis: is the candidate fair on the traffic it served so far?

The input is a window of live decisions as sufficient statistics
(:class:`~contracts.metrics.DecisionCell`), never rows, so one look costs the same at
1% of traffic as at 100%. Two kinds of test are run:

* fairness metrics, on the candidate's own decisions only, comparing every unordered
  pair of groups present (the stable side has its own, separately managed biases; what
  the candidate must show is that *it* treats groups alike);
* guards, comparing the candidate to the stable side with all groups pooled (a
  candidate that approves everyone equally is fair and still a regression).

Judgement is asymmetric on purpose, because a breach rolls back and a false rollback
stalls the remediation of a real incident:

* BREACH only when the confidence interval lies entirely on the wrong side of the
  threshold: the data then *demonstrate* harm at the look's alpha;
* PASS when there are enough samples and the point estimate is on the right side,
  even if the interval still straddles the threshold (the bake goes on, and the
  next looks see more data);
* INCONCLUSIVE when a group has fewer than the minimum samples (never a pass, never
  a breach), or when the estimate is on the wrong side but the interval still
  reaches the threshold: the bake should be extended, by about ``samples_needed``.

Orientation of pairwise comparisons: the two groups are taken in sorted name order
(first, second). Differences (demographic parity, equalized odds) are always
``second - first`` and labelled ``"B-A"``, judged on their absolute value. Ratios
(disparate impact, group mean ratio) are put worse-off over better-off, so the
estimate reads directly against the minimum; the label names that direction (``"B/A"``
when B is the worse-off group, and also on a tie). The conditional disparity is the
worse-off group's gap, labelled the same way.

Multiplicity: every enabled test over the groups present is one comparison, and the
look's family-wise alpha (from :func:`fairness.sequential.look_alpha`) is divided
among them by Bonferroni. The count depends only on the thresholds and the groups,
not on which comparisons had enough samples, so the error budget of a look cannot be
gamed by the data. Intervals are two-sided at the corrected alpha; a breach uses one
of their sides, so each test errs at most at half its share.

Metrics that need ground truth (equalized odds, error-rate increase) are advisory:
outcomes arrive weeks after a decision, so they are usually missing (NOT_APPLICABLE)
or thin in a canary window. Their INCONCLUSIVE does not hold the window back; their
BREACH does roll back.

Pure: no I/O, no clocks, safe in workflow code. Plain loops over the cells, no
pandas: the analysis runs every interval in production and ~20,000 times per
simulated study.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import combinations
from statistics import NormalDist
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.metrics import DecisionCell, Side
from fairness.intervals import Interval, corrected_alpha, newcombe_interval, ratio_interval


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


ADVISORY = frozenset(
    {
        LiveMetric.EQUALIZED_ODDS_TPR_DIFFERENCE,
        LiveMetric.EQUALIZED_ODDS_FPR_DIFFERENCE,
        LiveMetric.ERROR_RATE_INCREASE,
    }
)
"""Metrics on ground truth: their breach rolls back, their inconclusive holds nothing back."""

_LABELS: dict[LiveMetric, str] = {
    LiveMetric.DISPARATE_IMPACT_RATIO: "disparate-impact ratio",
    LiveMetric.DEMOGRAPHIC_PARITY_DIFFERENCE: "demographic-parity difference",
    LiveMetric.EQUALIZED_ODDS_TPR_DIFFERENCE: "true-positive-rate difference",
    LiveMetric.EQUALIZED_ODDS_FPR_DIFFERENCE: "false-positive-rate difference",
    LiveMetric.GROUP_MEAN_RATIO: "group mean-amount ratio",
    LiveMetric.CONDITIONAL_DISPARITY: "conditional amount gap",
    LiveMetric.APPROVAL_RATE_SHIFT: "approval-rate shift",
    LiveMetric.ERROR_RATE_INCREASE: "error-rate increase",
}


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


def analyse_window(
    cells: Sequence[DecisionCell], thresholds: LiveThresholds, *, alpha: float
) -> WindowAnalysis:
    """Judge one look at a ramp step's cumulative live decisions.

    ``alpha`` is the family-wise alpha of this look (see :mod:`fairness.sequential`).
    Groups are those present on either side; a group only the stable side has seen is
    judged with zero candidate decisions, i.e. inconclusive.
    """
    sides = _tally(cells)
    candidate, stable = sides[Side.CANDIDATE], sides[Side.STABLE]
    groups = sorted(set(candidate) | set(stable))
    for group in groups:
        candidate.setdefault(group, _Tally()).settle()
    pairs = list(combinations(groups, 2))

    pairwise = _pairwise_tests(thresholds)
    guards = _guard_tests(thresholds)
    comparisons = len(pairs) * len(pairwise) + len(guards)
    comparison_alpha = corrected_alpha(alpha, max(comparisons, 1))
    judge = _Judge(thresholds, comparison_alpha)

    judged = [
        test(judge, first, candidate[first], second, candidate[second])
        for first, second in pairs
        for test in pairwise
    ]
    pooled_candidate, pooled_stable = _pooled(candidate.values()), _pooled(stable.values())
    judged += [guard(judge, candidate, pooled_candidate, pooled_stable) for guard in guards]

    results = [result for result, _ in judged]
    needed = dict.fromkeys(groups, 0)
    for result, needs in judged:
        if result.metric not in ADVISORY:
            for group, count in needs.items():
                needed[group] = max(needed[group], count)
    verdict = _window_verdict(results)
    return WindowAnalysis(
        verdict=verdict,
        alpha=alpha,
        comparison_alpha=comparison_alpha,
        comparisons=comparisons,
        samples={
            str(side): {
                group: tallies[group].decisions if group in tallies else 0 for group in groups
            }
            for side, tallies in sides.items()
        },
        outcomes={group: candidate[group].labelled for group in groups},
        results=results,
        samples_needed=needed,
        headline=_headline(verdict, results, comparisons),
    )


# ---- sufficient statistics ------------------------------------------------------------


@dataclass(slots=True)
class _Moments:
    """Count, sum and sum of squares of approved amounts; mean and cv^2 once settled."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0
    mean: float = 0.0
    cv2: float | None = None  # squared coefficient of variation of one amount

    def settle(self) -> None:
        if self.n:
            self.mean = self.total / self.n
        if self.n >= 2 and self.mean > 0:
            variance = max(self.squares - self.total**2 / self.n, 0.0) / (self.n - 1)
            self.cv2 = variance / self.mean**2


@dataclass(slots=True)
class _Tally:
    """One side's decisions for one group, reduced to what the metrics need."""

    decisions: int = 0
    approved: int = 0
    positives: int = 0  # decisions whose outcome turned out good
    approved_positives: int = 0
    negatives: int = 0
    approved_negatives: int = 0
    strata: dict[str, _Moments] = field(default_factory=dict)  # approved amounts per stratum
    amounts: _Moments = field(default_factory=_Moments)  # all strata, once settled
    spread: float | None = None  # cv^2 of an approved amount inside a stratum, pooled

    def settle(self) -> None:
        """Add the strata up, and pool the within-stratum cv^2, weighted by degrees of freedom.

        A stratum cell with a single amount, or whose amounts are all equal, borrows
        it: a stratum that happens to hold identical limits must not make an
        interval collapse.
        """
        weighted = freedom = 0.0
        amounts = self.amounts
        for cell in self.strata.values():
            cell.settle()
            if cell.cv2 is not None:
                weighted += (cell.n - 1) * cell.cv2
                freedom += cell.n - 1
            amounts.n += cell.n
            amounts.total += cell.total
            amounts.squares += cell.squares
        self.spread = weighted / freedom if freedom else None
        amounts.settle()

    @property
    def labelled(self) -> int:
        return self.positives + self.negatives

    @property
    def errors(self) -> int:
        """Good outcomes declined plus bad outcomes approved."""
        return self.positives - self.approved_positives + self.approved_negatives


def _tally(cells: Sequence[DecisionCell]) -> dict[Side, dict[str, _Tally]]:
    """One pass over the cells (the hot loop of a simulated study: keep it plain)."""
    stable: dict[str, _Tally] = {}
    sides: dict[Side, dict[str, _Tally]] = {Side.CANDIDATE: {}, Side.STABLE: stable}
    for cell in cells:
        tallies = sides[cell.side]
        tally = tallies.get(cell.group)
        if tally is None:
            tally = tallies[cell.group] = _Tally()
        count, outcome = cell.count, cell.outcome
        tally.decisions += count
        if cell.approved:
            tally.approved += count
            if outcome is True:
                tally.positives += count
                tally.approved_positives += count
            elif outcome is False:
                tally.negatives += count
                tally.approved_negatives += count
            if tallies is stable:
                continue  # amounts are compared between groups of the candidate only
            moments = tally.strata.get(cell.stratum)
            if moments is None:
                moments = tally.strata[cell.stratum] = _Moments()
            moments.n += count
            moments.total += cell.amount_sum
            moments.squares += cell.amount_sumsq
        elif outcome is True:
            tally.positives += count
        elif outcome is False:
            tally.negatives += count
    return sides


# ---- judging --------------------------------------------------------------------------

_Judged = tuple[MetricResult, dict[str, int]]
"""A result and, per candidate group, the more decisions it asks for (for the window)."""

_TWO_SIDED = frozenset(
    {
        LiveMetric.DEMOGRAPHIC_PARITY_DIFFERENCE,
        LiveMetric.EQUALIZED_ODDS_TPR_DIFFERENCE,
        LiveMetric.EQUALIZED_ODDS_FPR_DIFFERENCE,
        LiveMetric.APPROVAL_RATE_SHIFT,
    }
)
"""Signed differences judged on their absolute value: harm either way breaches."""


class _Judge:
    """Turns an interval into a verdict, with the reasons and sample sizes a reader needs."""

    def __init__(self, thresholds: LiveThresholds, comparison_alpha: float) -> None:
        self.thresholds = thresholds
        self.alpha = comparison_alpha
        self.z = NormalDist().inv_cdf(1.0 - comparison_alpha / 2.0)

    def judge(
        self,
        metric: LiveMetric,
        comparison: str,
        counts: dict[str, int],
        interval: Interval | None,
        threshold: float,
        *,
        minimum: int,
        unit: str,
        unmeasured: str = "",
        unmeasured_extra: int | None = None,
        note: str = "",
    ) -> tuple[MetricResult, int | None]:
        """The verdict of one test, and for an inconclusive one the extra samples per party.

        A party (group or side) with fewer than ``minimum`` in ``counts`` makes the test
        inconclusive whatever the interval says; the extra is then the largest shortfall.
        """
        label = f"{_LABELS[metric]} {comparison}"
        bound = _bound(metric)
        if metric in _TWO_SIDED:
            limit, relation = f"+/-{_figure(threshold)}", "outside"
        else:
            limit = _figure(threshold)
            relation = "above the maximum" if bound == "max" else "below the minimum"
        extra: int | None = None
        lacking = {party: n for party, n in counts.items() if n < minimum}
        if lacking:
            parties = ", ".join(f"{party} has {n}" for party, n in lacking.items())
            seen = f" (so far {_describe(interval)})" if interval is not None else ""
            reason = f"{label}: too few {unit} to judge, {parties} of the {minimum} needed{seen}"
            verdict, extra = MetricVerdict.INCONCLUSIVE, minimum - min(lacking.values())
        elif interval is None:
            reason = f"{label}: {unmeasured}"
            verdict, extra = MetricVerdict.INCONCLUSIVE, unmeasured_extra
        else:
            estimate, lower, upper = _unsafe_view(metric, interval)
            safest = upper if bound == "min" else lower  # the end nearest the safe side
            if not _past(bound, estimate, threshold):
                verdict = MetricVerdict.PASS
                reason = f"{label} {_describe(interval)} within {limit}"
            elif _past(bound, safest, threshold):
                verdict = MetricVerdict.BREACH
                reason = f"{label} {_describe(interval)}: its whole interval is {relation} {limit}"
            else:
                verdict = MetricVerdict.INCONCLUSIVE
                extra = _samples_to_settle(
                    min(counts.values()), abs(safest - estimate), abs(estimate - threshold)
                )
                more = f"; about {extra} more {unit} per group would settle it" if extra else ""
                reason = (
                    f"{label} {_describe(interval)} is {relation} {limit} but its interval "
                    f"still reaches it{more}"
                )
        result = MetricResult(
            metric=metric,
            comparison=comparison,
            counts=counts,
            estimate=interval.estimate if interval is not None else None,
            interval=interval,
            threshold=threshold,
            bound=bound,
            verdict=verdict,
            reason=f"{reason}{note}",
            samples_needed=extra if verdict is MetricVerdict.INCONCLUSIVE else None,
        )
        return result, extra

    def not_applicable(
        self,
        metric: LiveMetric,
        comparison: str,
        counts: dict[str, int],
        threshold: float,
        why: str,
    ) -> MetricResult:
        return MetricResult(
            metric=metric,
            comparison=comparison,
            counts=counts,
            estimate=None,
            interval=None,
            threshold=threshold,
            bound=_bound(metric),
            verdict=MetricVerdict.NOT_APPLICABLE,
            reason=f"{_LABELS[metric]} {comparison}: {why}",
            samples_needed=None,
        )


def _bound(metric: LiveMetric) -> Literal["min", "max"]:
    ratios = (LiveMetric.DISPARATE_IMPACT_RATIO, LiveMetric.GROUP_MEAN_RATIO)
    return "min" if metric in ratios else "max"


def _unsafe_view(metric: LiveMetric, interval: Interval) -> tuple[float, float, float]:
    """(estimate, lower, upper), mirrored for a negative two-sided difference, so that
    a difference is judged like a maximum whichever group it disfavours."""
    if metric in _TWO_SIDED and interval.estimate < 0:
        return -interval.estimate, -interval.upper, -interval.lower
    return interval.estimate, interval.lower, interval.upper


def _past(bound: Literal["min", "max"], value: float, threshold: float) -> bool:
    return value < threshold if bound == "min" else value > threshold


def _excess(result: MetricResult) -> float:
    """How far the estimate lies past its threshold (negative: on the safe side)."""
    if result.interval is None:
        return -math.inf
    estimate = _unsafe_view(result.metric, result.interval)[0]
    return result.threshold - estimate if result.bound == "min" else estimate - result.threshold


def _samples_to_settle(n_small: int, spread: float, distance: float) -> int | None:
    """More samples per group before the interval's near side clears the threshold.

    A half-width shrinks as 1/sqrt(n), so if the estimate stayed where it is,
    ``n * (spread / distance)^2`` samples would put the threshold just outside the
    interval. An approximation: the estimate moves too, and the smaller party's n
    stands in for both.
    """
    if not math.isfinite(spread) or distance <= 0 or n_small < 1:
        return None
    return max(1, math.ceil(n_small * ((spread / distance) ** 2 - 1.0)))


# ---- pairwise fairness metrics (candidate side) ---------------------------------------

_NO_OUTCOME = "no outcome known yet (ground truth such as repayment arrives weeks after a decision)"

_PairTest = Callable[[_Judge, str, _Tally, str, _Tally], _Judged]


def _pairwise_tests(thresholds: LiveThresholds) -> list[_PairTest]:
    """The enabled pairwise tests, one result per pair each (equalized odds is two tests)."""
    tests: list[tuple[float | None, _PairTest]] = [
        (thresholds.min_disparate_impact_ratio, _disparate_impact),
        (thresholds.max_demographic_parity_difference, _parity_difference),
        (thresholds.max_equalized_odds_difference, _true_positive_difference),
        (thresholds.max_equalized_odds_difference, _false_positive_difference),
        (thresholds.min_group_mean_ratio, _group_mean_ratio),
        (thresholds.max_conditional_disparity, _conditional_disparity),
    ]
    return [test for threshold, test in tests if threshold is not None]


def _pair_judged(
    judge: _Judge,
    metric: LiveMetric,
    comparison: str,
    counts: dict[str, int],
    interval: Interval | None,
    threshold: float | None,
    *,
    minimum: int | None = None,
    unit: str = "decisions",
    unmeasured: str = "",
    unmeasured_extra: int | None = None,
    note: str = "",
) -> _Judged:
    """Judge a pairwise test; each group is asked for its own shortfall, or both for more."""
    assert threshold is not None  # only enabled tests run
    minimum = judge.thresholds.min_samples_per_group if minimum is None else minimum
    result, extra = judge.judge(
        metric,
        comparison,
        counts,
        interval,
        threshold,
        minimum=minimum,
        unit=unit,
        unmeasured=unmeasured,
        unmeasured_extra=unmeasured_extra,
        note=note,
    )
    if result.verdict is not MetricVerdict.INCONCLUSIVE:
        return result, {}
    if any(n < minimum for n in counts.values()):
        return result, {group: max(0, minimum - n) for group, n in counts.items()}
    return result, dict.fromkeys(counts, extra or 0)


def _disparate_impact(judge: _Judge, first: str, a: _Tally, second: str, b: _Tally) -> _Judged:
    """MOVER-R interval of the ratio of approval rates, turned worse-off over better-off.

    One interval covers both directions: if second/first lies in [L, U], first/second
    lies in [1/U, 1/L], so turning it costs no extra comparison.
    """
    comparison, interval = f"{second}/{first}", None
    if a.decisions and b.decisions:
        interval = ratio_interval(
            b.approved, b.decisions, a.approved, a.decisions, alpha=judge.alpha
        )
        if interval.estimate > 1.0:
            comparison, interval = f"{first}/{second}", _inverse(interval)
    return _pair_judged(
        judge,
        LiveMetric.DISPARATE_IMPACT_RATIO,
        comparison,
        {first: a.decisions, second: b.decisions},
        interval,
        judge.thresholds.min_disparate_impact_ratio,
    )


def _parity_difference(judge: _Judge, first: str, a: _Tally, second: str, b: _Tally) -> _Judged:
    """Newcombe interval of the difference in approval rates, second minus first."""
    interval = None
    if a.decisions and b.decisions:
        interval = newcombe_interval(
            b.approved, b.decisions, a.approved, a.decisions, alpha=judge.alpha
        )
    return _pair_judged(
        judge,
        LiveMetric.DEMOGRAPHIC_PARITY_DIFFERENCE,
        f"{second}-{first}",
        {first: a.decisions, second: b.decisions},
        interval,
        judge.thresholds.max_demographic_parity_difference,
    )


def _true_positive_difference(
    judge: _Judge, first: str, a: _Tally, second: str, b: _Tally
) -> _Judged:
    """P(approved | good outcome), second minus first: the good applicants a group loses."""
    return _odds_difference(
        judge,
        LiveMetric.EQUALIZED_ODDS_TPR_DIFFERENCE,
        (first, a.positives, a.approved_positives),
        (second, b.positives, b.approved_positives),
        no_outcome=a.labelled == 0 and b.labelled == 0,
        unit="good outcomes",
    )


def _false_positive_difference(
    judge: _Judge, first: str, a: _Tally, second: str, b: _Tally
) -> _Judged:
    """P(approved | bad outcome), second minus first: the risk a group is let take."""
    return _odds_difference(
        judge,
        LiveMetric.EQUALIZED_ODDS_FPR_DIFFERENCE,
        (first, a.negatives, a.approved_negatives),
        (second, b.negatives, b.approved_negatives),
        no_outcome=a.labelled == 0 and b.labelled == 0,
        unit="bad outcomes",
    )


def _odds_difference(
    judge: _Judge,
    metric: LiveMetric,
    first: tuple[str, int, int],
    second: tuple[str, int, int],
    *,
    no_outcome: bool,
    unit: str,
) -> _Judged:
    """One half of equalized odds; its samples are decisions with an outcome of that kind."""
    threshold = judge.thresholds.max_equalized_odds_difference
    assert threshold is not None
    (name_a, trials_a, hits_a), (name_b, trials_b, hits_b) = first, second
    comparison, counts = f"{name_b}-{name_a}", {name_a: trials_a, name_b: trials_b}
    if no_outcome:
        return judge.not_applicable(metric, comparison, counts, threshold, _NO_OUTCOME), {}
    interval = None
    if trials_a and trials_b:
        interval = newcombe_interval(hits_b, trials_b, hits_a, trials_a, alpha=judge.alpha)
    return _pair_judged(
        judge,
        metric,
        comparison,
        counts,
        interval,
        threshold,
        minimum=judge.thresholds.min_outcomes_per_group,
        unit=unit,
    )


def _group_mean_ratio(judge: _Judge, first: str, a: _Tally, second: str, b: _Tally) -> _Judged:
    """Ratio of mean approved amounts, worse-off over better-off, with no strata.

    Delta method on the log scale, where a ratio of means is closer to normal:
    var(log m_a / m_b) ~ cv_a^2 / n_a + cv_b^2 / n_b, from each group's sums.
    """
    comparison, interval = f"{second}/{first}", None
    cv_a, cv_b = a.amounts.cv2, b.amounts.cv2
    if cv_a is not None and cv_b is not None:
        ratio = b.amounts.mean / a.amounts.mean
        if ratio > 1.0:
            comparison, ratio = f"{first}/{second}", 1.0 / ratio
        spread = judge.z * math.sqrt(cv_a / a.amounts.n + cv_b / b.amounts.n)
        interval = Interval(
            estimate=ratio,
            lower=ratio * math.exp(-spread),
            upper=ratio * math.exp(spread),
            confidence=1.0 - judge.alpha,
            method="delta-log-ratio-of-means",
        )
    return _pair_judged(
        judge,
        LiveMetric.GROUP_MEAN_RATIO,
        comparison,
        {first: a.decisions, second: b.decisions},
        interval,
        judge.thresholds.min_group_mean_ratio,
        unmeasured="fewer than two approved amounts in a group: no spread to measure",
        note=f"; {a.amounts.n} and {b.amounts.n} approved amounts",
    )


def _conditional_disparity(judge: _Judge, first: str, a: _Tally, second: str, b: _Tally) -> _Judged:
    """Relative gap in mean approved amount at equal income and credit band.

    Inside each stratum with at least ``min_stratum_count`` approved decisions of both
    groups, r_s = mean_second / mean_first, and R = sum w_s r_s with w_s proportional
    to the two groups' approved decisions there: applicants are compared only with
    applicants like them, so groups with different income mixes are not confounded,
    as an unconditional mean ratio would be. R is also computed the other way up
    (from 1 / r_s); the worse-off group is the one whose R is lower, and the figure
    judged is its gap 1 - R.

    Variance by the delta method, strata independent:
    var R = sum w_s^2 r_s^2 (cv_a,s^2 / n_a,s + cv_b,s^2 / n_b,s). The weights are
    treated as fixed (they are counts, not amounts), as are the cv^2, estimated from
    each cell's sums. The interval is built on the log scale, R exp(+/- z se / R),
    then turned into a gap: a ratio of means is skewed to the right, and a
    symmetric R +/- z se put about three times its share of truths above the upper
    limit at the corrected alphas a canary uses (simulated: 3.4e-4 for a nominal
    1e-4, log-normal limits, 15-30 approvals a cell), which is exactly the side a
    false rollback comes from; on the log scale 1.5e-4. Coverage is checked by
    simulation in the tests.
    """
    floor = judge.thresholds.min_stratum_count
    used: list[tuple[_Moments, _Moments]] = []
    growth = math.inf  # how much the traffic must grow before some thin stratum qualifies
    for stratum, cell_a in a.strata.items():
        cell_b = b.strata.get(stratum)
        if cell_b is None or cell_a.total <= 0 or cell_b.total <= 0:
            continue
        if cell_a.n >= floor and cell_b.n >= floor:
            used.append((cell_a, cell_b))
        else:
            growth = min(growth, floor / min(cell_a.n, cell_b.n))

    comparison = f"{second}/{first}"
    gap = _stratified_gap(used, a.spread, b.spread, judge)
    interval = None
    if gap is not None:
        swapped, interval = gap
        if swapped:
            comparison = f"{first}/{second}"
    n_small = min(a.decisions, b.decisions)
    if used:
        unmeasured = "no spread to measure in the approved amounts of the strata used"
        extra = None
    else:
        unmeasured = f"no stratum has {floor} approved decisions of both groups yet"
        extra = math.ceil(n_small * (growth - 1.0)) if math.isfinite(growth) else None
    return _pair_judged(
        judge,
        LiveMetric.CONDITIONAL_DISPARITY,
        comparison,
        {first: a.decisions, second: b.decisions},
        interval,
        judge.thresholds.max_conditional_disparity,
        unmeasured=unmeasured,
        unmeasured_extra=extra,
        note=(
            f"; {len(used)} {'stratum' if len(used) == 1 else 'strata'}, "
            f"{sum(x.n for x, _ in used)} and {sum(y.n for _, y in used)} approved amounts"
        ),
    )


def _stratified_gap(
    used: list[tuple[_Moments, _Moments]],
    spread_a: float | None,
    spread_b: float | None,
    judge: _Judge,
) -> tuple[bool, Interval] | None:
    """(whether first is the worse-off group, interval of its gap 1 - R), if measurable.

    A cell without a spread of its own (see :meth:`_Tally.settle`) uses its group's.
    """
    if not used:
        return None
    ratios: list[float] = []
    relative_variances: list[float] = []
    weights: list[float] = []
    for cell_a, cell_b in used:
        cv2_a, cv2_b = cell_a.cv2 or spread_a, cell_b.cv2 or spread_b
        if cv2_a is None or cv2_b is None:
            return None
        ratios.append(cell_b.mean / cell_a.mean)
        relative_variances.append(cv2_a / cell_a.n + cv2_b / cell_b.n)
        weights.append(float(cell_a.n + cell_b.n))
    total = sum(weights)
    forward = backward = forward_var = backward_var = 0.0
    for ratio, terms, weight in zip(ratios, relative_variances, weights, strict=True):
        w = weight / total
        forward += w * ratio
        backward += w / ratio
        forward_var += w * w * ratio * ratio * terms
        backward_var += w * w * terms / (ratio * ratio)
    swapped = backward < forward
    level, variance = (backward, backward_var) if swapped else (forward, forward_var)
    spread = math.exp(judge.z * math.sqrt(variance) / level)
    return swapped, Interval(
        estimate=1.0 - level,
        lower=1.0 - level * spread,
        upper=1.0 - level / spread,
        confidence=1.0 - judge.alpha,
        method="delta-log-stratified-ratio",
    )


# ---- guards (candidate versus stable, groups pooled) ----------------------------------

_Guard = Callable[[_Judge, dict[str, _Tally], _Tally, _Tally], _Judged]

_SIDES = f"{Side.CANDIDATE}-{Side.STABLE}"
_NO_STABLE = "no stable decisions to compare with (the candidate serves all the traffic)"


def _guard_tests(thresholds: LiveThresholds) -> list[_Guard]:
    tests: list[tuple[float | None, _Guard]] = [
        (thresholds.max_approval_rate_shift, _approval_rate_shift),
        (thresholds.max_error_rate_increase, _error_rate_increase),
    ]
    return [test for threshold, test in tests if threshold is not None]


def _pooled(tallies: Iterable[_Tally]) -> _Tally:
    pooled = _Tally()
    for tally in tallies:
        pooled.decisions += tally.decisions
        pooled.approved += tally.approved
        pooled.positives += tally.positives
        pooled.approved_positives += tally.approved_positives
        pooled.negatives += tally.negatives
        pooled.approved_negatives += tally.approved_negatives
    return pooled


def _guard_judged(
    judge: _Judge,
    metric: LiveMetric,
    counts: dict[str, int],
    interval: Interval | None,
    threshold: float,
    candidate: dict[str, _Tally],
    *,
    minimum: int,
    unit: str,
) -> _Judged:
    """Judge a guard; what the candidate side lacks in total is asked of each group pro rata."""
    result, extra = judge.judge(
        metric, _SIDES, counts, interval, threshold, minimum=minimum, unit=unit
    )
    if result.verdict is not MetricVerdict.INCONCLUSIVE:
        return result, {}
    side_total = counts[Side.CANDIDATE]
    if side_total < minimum:
        extra = minimum - side_total
    elif counts[Side.STABLE] < minimum:
        return result, {}  # the stable side's shortfall is not the candidate's to make up
    if not extra:
        return result, {}
    total = sum(tally.decisions for tally in candidate.values())
    return result, {
        group: math.ceil(extra * tally.decisions / total) if total else extra
        for group, tally in candidate.items()
    }


def _approval_rate_shift(
    judge: _Judge, candidate: dict[str, _Tally], cand: _Tally, stable: _Tally
) -> _Judged:
    """Newcombe interval of candidate minus stable approval rate, all groups pooled.

    Pooling is sound because the router splits traffic at random, so both sides see
    the same mix of groups.
    """
    threshold = judge.thresholds.max_approval_rate_shift
    assert threshold is not None
    metric = LiveMetric.APPROVAL_RATE_SHIFT
    counts = {Side.CANDIDATE.value: cand.decisions, Side.STABLE.value: stable.decisions}
    if not stable.decisions:
        return judge.not_applicable(metric, _SIDES, counts, threshold, _NO_STABLE), {}
    interval = None
    if cand.decisions:
        interval = newcombe_interval(
            cand.approved, cand.decisions, stable.approved, stable.decisions, alpha=judge.alpha
        )
    return _guard_judged(
        judge,
        metric,
        counts,
        interval,
        threshold,
        candidate,
        minimum=judge.thresholds.min_samples_per_group,
        unit="decisions",
    )


def _error_rate_increase(
    judge: _Judge, candidate: dict[str, _Tally], cand: _Tally, stable: _Tally
) -> _Judged:
    """Newcombe interval of candidate minus stable error rate, among decisions with an outcome."""
    threshold = judge.thresholds.max_error_rate_increase
    assert threshold is not None
    metric = LiveMetric.ERROR_RATE_INCREASE
    counts = {Side.CANDIDATE.value: cand.labelled, Side.STABLE.value: stable.labelled}
    if not stable.decisions:
        return judge.not_applicable(metric, _SIDES, counts, threshold, _NO_STABLE), {}
    if not cand.labelled and not stable.labelled:
        return judge.not_applicable(metric, _SIDES, counts, threshold, _NO_OUTCOME), {}
    interval = None
    if cand.labelled and stable.labelled:
        interval = newcombe_interval(
            cand.errors, cand.labelled, stable.errors, stable.labelled, alpha=judge.alpha
        )
    return _guard_judged(
        judge,
        metric,
        counts,
        interval,
        threshold,
        candidate,
        minimum=judge.thresholds.min_outcomes_per_group,
        unit="outcomes",
    )


# ---- the window -----------------------------------------------------------------------


def _window_verdict(results: list[MetricResult]) -> MetricVerdict:
    """Any breach rolls back; else a binding test still inconclusive holds the window open.

    A window with nothing binding to judge (a single group and no guard) is
    inconclusive, never a vacuous pass.
    """
    if any(result.verdict is MetricVerdict.BREACH for result in results):
        return MetricVerdict.BREACH
    binding = [
        result
        for result in results
        if result.metric not in ADVISORY and result.verdict is not MetricVerdict.NOT_APPLICABLE
    ]
    if not binding or any(r.verdict is MetricVerdict.INCONCLUSIVE for r in binding):
        return MetricVerdict.INCONCLUSIVE
    return MetricVerdict.PASS


def _headline(verdict: MetricVerdict, results: list[MetricResult], comparisons: int) -> str:
    """One line for the timeline: the verdict and the result that decided it.

    The deciding result is the breach furthest past its threshold, the binding
    inconclusive test asking for the most samples (one with an estimate first), or the
    pass closest to its threshold.
    """
    deciding = [
        result
        for result in results
        if result.verdict is verdict
        and (verdict is MetricVerdict.BREACH or result.metric not in ADVISORY)
    ]
    breaches = sum(result.verdict is MetricVerdict.BREACH for result in results)
    tally = f"{breaches} of {comparisons} comparisons breached"
    if not deciding:
        return f"{verdict}: nothing to judge yet; {tally}"
    worst = max(
        deciding,
        key=lambda result: (
            result.interval is not None,
            result.samples_needed or 0,
            _excess(result),
        ),
    )
    figure = _describe(worst.interval) if worst.interval is not None else "no estimate"
    counts = ", ".join(f"{party}={n}" for party, n in worst.counts.items())
    needed = f", about {worst.samples_needed} more needed" if worst.samples_needed else ""
    return (
        f"{verdict}: {worst.metric} {worst.comparison} {figure} vs {worst.bound} "
        f"{_figure(worst.threshold)} (n {counts}{needed}); {tally}"
    )


def _inverse(interval: Interval) -> Interval:
    """The same ratio the other way up: [L, U] becomes [1/U, 1/L]."""

    def invert(value: float) -> float:
        if value == 0:
            return math.inf
        return 0.0 if math.isinf(value) else 1.0 / value

    return Interval(
        estimate=invert(interval.estimate),
        lower=invert(interval.upper),
        upper=invert(interval.lower),
        confidence=interval.confidence,
        method=interval.method,
    )


def _figure(value: float) -> str:
    return f"{value:.3g}"


def _describe(interval: Interval) -> str:
    return f"{_figure(interval.estimate)} [{_figure(interval.lower)}, {_figure(interval.upper)}]"

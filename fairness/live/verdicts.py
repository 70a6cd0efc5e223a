"""One test's verdict: an interval against its threshold, with the reason a reader needs.

Asymmetric on purpose (see :mod:`fairness.live`): a breach needs the whole interval
on the wrong side, a pass only the estimate on the right side and enough samples;
everything in between is inconclusive, with about how many more samples would settle it.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

from contracts.fairness import Interval, LiveMetric, LiveThresholds, MetricResult, MetricVerdict

LABELS: dict[LiveMetric, str] = {
    LiveMetric.DISPARATE_IMPACT_RATIO: "disparate-impact ratio",
    LiveMetric.DEMOGRAPHIC_PARITY_DIFFERENCE: "demographic-parity difference",
    LiveMetric.EQUALIZED_ODDS_TPR_DIFFERENCE: "true-positive-rate difference",
    LiveMetric.EQUALIZED_ODDS_FPR_DIFFERENCE: "false-positive-rate difference",
    LiveMetric.GROUP_MEAN_RATIO: "group mean-amount ratio",
    LiveMetric.CONDITIONAL_DISPARITY: "conditional amount gap",
    LiveMetric.APPROVAL_RATE_SHIFT: "approval-rate shift",
    LiveMetric.ERROR_RATE_INCREASE: "error-rate increase",
}

Judged = tuple[MetricResult, dict[str, int]]
"""A result and, per candidate group, the more decisions it asks for (for the window)."""

TWO_SIDED = frozenset(
    {
        LiveMetric.DEMOGRAPHIC_PARITY_DIFFERENCE,
        LiveMetric.EQUALIZED_ODDS_TPR_DIFFERENCE,
        LiveMetric.EQUALIZED_ODDS_FPR_DIFFERENCE,
        LiveMetric.APPROVAL_RATE_SHIFT,
    }
)
"""Signed differences judged on their absolute value: harm either way breaches."""


class Judge:
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
        label = f"{LABELS[metric]} {comparison}"
        bound = bound_of(metric)
        if metric in TWO_SIDED:
            limit, relation = f"+/-{format_figure(threshold)}", "outside"
        else:
            limit = format_figure(threshold)
            relation = "above the maximum" if bound == "max" else "below the minimum"
        extra: int | None = None
        lacking = {party: n for party, n in counts.items() if n < minimum}
        if lacking:
            parties = ", ".join(f"{party} has {n}" for party, n in lacking.items())
            seen = f" (so far {describe_interval(interval)})" if interval is not None else ""
            reason = f"{label}: too few {unit} to judge, {parties} of the {minimum} needed{seen}"
            verdict, extra = MetricVerdict.INCONCLUSIVE, minimum - min(lacking.values())
        elif interval is None:
            reason = f"{label}: {unmeasured}"
            verdict, extra = MetricVerdict.INCONCLUSIVE, unmeasured_extra
        else:
            estimate, lower, upper = unsafe_view(metric, interval)
            safest = upper if bound == "min" else lower  # the end nearest the safe side
            if not is_past(bound, estimate, threshold):
                verdict = MetricVerdict.PASS
                reason = f"{label} {describe_interval(interval)} within {limit}"
            elif is_past(bound, safest, threshold):
                verdict = MetricVerdict.BREACH
                whole = f"its whole interval is {relation} {limit}"
                reason = f"{label} {describe_interval(interval)}: {whole}"
            else:
                verdict = MetricVerdict.INCONCLUSIVE
                extra = samples_to_settle(
                    min(counts.values()), abs(safest - estimate), abs(estimate - threshold)
                )
                more = f"; about {extra} more {unit} per group would settle it" if extra else ""
                reason = (
                    f"{label} {describe_interval(interval)} is {relation} {limit} but its interval "
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
            bound=bound_of(metric),
            verdict=MetricVerdict.NOT_APPLICABLE,
            reason=f"{LABELS[metric]} {comparison}: {why}",
            samples_needed=None,
        )


def bound_of(metric: LiveMetric) -> Literal["min", "max"]:
    ratios = (LiveMetric.DISPARATE_IMPACT_RATIO, LiveMetric.GROUP_MEAN_RATIO)
    return "min" if metric in ratios else "max"


def unsafe_view(metric: LiveMetric, interval: Interval) -> tuple[float, float, float]:
    """(estimate, lower, upper), mirrored for a negative two-sided difference, so that
    a difference is judged like a maximum whichever group it disfavours."""
    if metric in TWO_SIDED and interval.estimate < 0:
        return -interval.estimate, -interval.upper, -interval.lower
    return interval.estimate, interval.lower, interval.upper


def is_past(bound: Literal["min", "max"], value: float, threshold: float) -> bool:
    return value < threshold if bound == "min" else value > threshold


def excess(result: MetricResult) -> float:
    """How far the estimate lies past its threshold (negative: on the safe side)."""
    if result.interval is None:
        return -math.inf
    estimate = unsafe_view(result.metric, result.interval)[0]
    return result.threshold - estimate if result.bound == "min" else estimate - result.threshold


def samples_to_settle(n_small: int, spread: float, distance: float) -> int | None:
    """More samples per group before the interval's near side clears the threshold.

    A half-width shrinks as 1/sqrt(n), so if the estimate stayed where it is,
    ``n * (spread / distance)^2`` samples would put the threshold just outside the
    interval. An approximation: the estimate moves too, and the smaller party's n
    stands in for both.
    """
    if not math.isfinite(spread) or distance <= 0 or n_small < 1:
        return None
    return max(1, math.ceil(n_small * ((spread / distance) ** 2 - 1.0)))


NO_OUTCOME = "no outcome known yet (ground truth such as repayment arrives weeks after a decision)"


def format_figure(value: float) -> str:
    return f"{value:.3g}"


def describe_interval(interval: Interval) -> str:
    lower, upper = format_figure(interval.lower), format_figure(interval.upper)
    return f"{format_figure(interval.estimate)} [{lower}, {upper}]"

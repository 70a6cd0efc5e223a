"""Guards: the candidate against the stable side, all groups pooled.

A candidate that approves everyone equally is fair and still a regression; the
guards catch that. Pooling is sound because the router splits traffic at random.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from contracts.fairness import Interval, LiveMetric, LiveThresholds, MetricVerdict
from contracts.metrics import Side
from fairness.intervals import newcombe_interval
from fairness.live.tallies import Tally
from fairness.live.verdicts import NO_OUTCOME, Judge, Judged

Guard = Callable[[Judge, dict[str, Tally], Tally, Tally], Judged]

_SIDES = f"{Side.CANDIDATE}-{Side.STABLE}"
_NO_STABLE = "no stable decisions to compare with (the candidate serves all the traffic)"


def guard_tests(thresholds: LiveThresholds) -> list[Guard]:
    tests: list[tuple[float | None, Guard]] = [
        (thresholds.max_approval_rate_shift, _approval_rate_shift),
        (thresholds.max_error_rate_increase, _error_rate_increase),
    ]
    return [test for threshold, test in tests if threshold is not None]


def _guard_judged(
    judge: Judge,
    metric: LiveMetric,
    counts: dict[str, int],
    interval: Interval | None,
    threshold: float,
    candidate: dict[str, Tally],
    *,
    minimum: int,
    unit: str,
) -> Judged:
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
    judge: Judge, candidate: dict[str, Tally], cand: Tally, stable: Tally
) -> Judged:
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
    judge: Judge, candidate: dict[str, Tally], cand: Tally, stable: Tally
) -> Judged:
    """Newcombe interval of candidate minus stable error rate, among decisions with an outcome."""
    threshold = judge.thresholds.max_error_rate_increase
    assert threshold is not None
    metric = LiveMetric.ERROR_RATE_INCREASE
    counts = {Side.CANDIDATE.value: cand.labelled, Side.STABLE.value: stable.labelled}
    if not stable.decisions:
        return judge.not_applicable(metric, _SIDES, counts, threshold, _NO_STABLE), {}
    if not cand.labelled and not stable.labelled:
        return judge.not_applicable(metric, _SIDES, counts, threshold, NO_OUTCOME), {}
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

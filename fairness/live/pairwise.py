"""Fairness metrics between two groups of the candidate's own decisions.

The candidate must show that *it* treats groups alike; the stable side has its own,
separately managed biases. Differences are ``second - first``; ratios are put
worse-off over better-off (see :mod:`fairness.live` for the orientation rules).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from contracts.fairness import Interval, LiveMetric, LiveThresholds, MetricVerdict
from fairness.intervals import newcombe_interval, ratio_interval
from fairness.live.tallies import Moments, Tally
from fairness.live.verdicts import NO_OUTCOME, Judge, Judged

PairTest = Callable[[Judge, str, Tally, str, Tally], Judged]


def pairwise_tests(thresholds: LiveThresholds) -> list[PairTest]:
    """The enabled pairwise tests, one result per pair each (equalized odds is two tests)."""
    tests: list[tuple[float | None, PairTest]] = [
        (thresholds.min_disparate_impact_ratio, _disparate_impact),
        (thresholds.max_demographic_parity_difference, _parity_difference),
        (thresholds.max_equalized_odds_difference, _true_positive_difference),
        (thresholds.max_equalized_odds_difference, _false_positive_difference),
        (thresholds.min_group_mean_ratio, _group_mean_ratio),
        (thresholds.max_conditional_disparity, _conditional_disparity),
    ]
    return [test for threshold, test in tests if threshold is not None]


def _pair_judged(
    judge: Judge,
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
) -> Judged:
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


def _disparate_impact(judge: Judge, first: str, a: Tally, second: str, b: Tally) -> Judged:
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


def _parity_difference(judge: Judge, first: str, a: Tally, second: str, b: Tally) -> Judged:
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


def _true_positive_difference(judge: Judge, first: str, a: Tally, second: str, b: Tally) -> Judged:
    """P(approved | good outcome), second minus first: the good applicants a group loses."""
    return _odds_difference(
        judge,
        LiveMetric.EQUALIZED_ODDS_TPR_DIFFERENCE,
        (first, a.positives, a.approved_positives),
        (second, b.positives, b.approved_positives),
        no_outcome=a.labelled == 0 and b.labelled == 0,
        unit="good outcomes",
    )


def _false_positive_difference(judge: Judge, first: str, a: Tally, second: str, b: Tally) -> Judged:
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
    judge: Judge,
    metric: LiveMetric,
    first: tuple[str, int, int],
    second: tuple[str, int, int],
    *,
    no_outcome: bool,
    unit: str,
) -> Judged:
    """One half of equalized odds; its samples are decisions with an outcome of that kind."""
    threshold = judge.thresholds.max_equalized_odds_difference
    assert threshold is not None
    (name_a, trials_a, hits_a), (name_b, trials_b, hits_b) = first, second
    comparison, counts = f"{name_b}-{name_a}", {name_a: trials_a, name_b: trials_b}
    if no_outcome:
        return judge.not_applicable(metric, comparison, counts, threshold, NO_OUTCOME), {}
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


def _group_mean_ratio(judge: Judge, first: str, a: Tally, second: str, b: Tally) -> Judged:
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


def _conditional_disparity(judge: Judge, first: str, a: Tally, second: str, b: Tally) -> Judged:
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
    used: list[tuple[Moments, Moments]] = []
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
    used: list[tuple[Moments, Moments]],
    spread_a: float | None,
    spread_b: float | None,
    judge: Judge,
) -> tuple[bool, Interval] | None:
    """(whether first is the worse-off group, interval of its gap 1 - R), if measurable.

    A cell without a spread of its own (see :meth:`.Tally.settle`) uses its group's.
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

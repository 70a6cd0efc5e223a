"""One look: every enabled test over the window, and the look's verdict and headline.

The look's family-wise alpha is split among its comparisons by Bonferroni; the count
depends only on the thresholds and the groups present, never on which comparisons
had enough samples, so the data cannot game the error budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from contracts.fairness import (
    LiveMetric,
    LiveThresholds,
    MetricResult,
    MetricVerdict,
    WindowAnalysis,
)
from contracts.metrics import DecisionCell, Side
from fairness.intervals import corrected_alpha
from fairness.live.guards import guard_tests
from fairness.live.measurable import measurable
from fairness.live.pairwise import pairwise_tests
from fairness.live.tallies import Tally, pooled, tally_sides
from fairness.live.verdicts import Judge, describe_interval, excess, format_figure

ADVISORY = frozenset(
    {
        LiveMetric.EQUALIZED_ODDS_TPR_DIFFERENCE,
        LiveMetric.EQUALIZED_ODDS_FPR_DIFFERENCE,
        LiveMetric.ERROR_RATE_INCREASE,
    }
)
"""Metrics on ground truth: their breach rolls back, their inconclusive holds nothing back."""
ALL_GROUPS = "all groups"


def analyse_window(
    cells: Sequence[DecisionCell],
    thresholds: LiveThresholds,
    *,
    alpha: float,
    decision: bool = True,
    amount: bool = True,
) -> WindowAnalysis:
    """Judge one look at a ramp step's cumulative live decisions.

    ``alpha`` is the family-wise alpha of this look (see :mod:`fairness.sequential`).
    Groups are those present on either side; a group only the stable side has seen is
    judged with zero candidate decisions, i.e. inconclusive. ``decision`` and ``amount``
    say which outcomes the model makes (its manifest's): a test on an outcome it does
    not make is not applicable (:mod:`.measurable`), and spends none of the alpha.
    """
    thresholds, unmeasurable = measurable(thresholds, decision=decision, amount=amount)
    sides = tally_sides(cells)
    candidate, stable = sides[Side.CANDIDATE], sides[Side.STABLE]
    groups = sorted(set(candidate) | set(stable))
    for group in groups:
        candidate.setdefault(group, Tally()).settle()
    pairs = list(combinations(groups, 2))

    pairwise = pairwise_tests(thresholds)
    guards = guard_tests(thresholds)
    comparisons = len(pairs) * len(pairwise) + len(guards)
    comparison_alpha = corrected_alpha(alpha, max(comparisons, 1))
    judge = Judge(thresholds, comparison_alpha)

    judged = [
        test(judge, first, candidate[first], second, candidate[second])
        for first, second in pairs
        for test in pairwise
    ]
    pooled_candidate, pooled_stable = pooled(candidate.values()), pooled(stable.values())
    judged += [guard(judge, candidate, pooled_candidate, pooled_stable) for guard in guards]

    results = [result for result, _ in judged]
    results += [
        judge.not_applicable(metric, ALL_GROUPS, {}, threshold, why)
        for metric, threshold, why in unmeasurable
    ]
    needed = dict.fromkeys(groups, 0)
    for result, needs in judged:
        if result.metric not in ADVISORY:
            for group, count in needs.items():
                needed[group] = max(needed[group], count)
    verdict = window_verdict(results)
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
        headline=headline_of(verdict, results, comparisons),
    )


def window_verdict(results: list[MetricResult]) -> MetricVerdict:
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


def headline_of(verdict: MetricVerdict, results: list[MetricResult], comparisons: int) -> str:
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
            excess(result),
        ),
    )
    figure = describe_interval(worst.interval) if worst.interval is not None else "no estimate"
    counts = ", ".join(f"{party}={n}" for party, n in worst.counts.items())
    needed = f", about {worst.samples_needed} more needed" if worst.samples_needed else ""
    return (
        f"{verdict}: {worst.metric} {worst.comparison} {figure} vs {worst.bound} "
        f"{format_figure(worst.threshold)} (n {counts}{needed}); {tally}"
    )

"""Which live tests a model's outcomes can feed, and a stated reason for the rest.

A playbook's thresholds are written for models that make a decision, an amount or
both. A decision-only model (hire / no hire) has no amount to compare, so a test on
amounts can never gather evidence: left on, it would stay inconclusive at every look,
hold every canary window open until the bake runs out of extensions, keep a drift
monitor from ever settling, and spend a share of the look's Bonferroni alpha on a
comparison that cannot happen. An amount-only model counts every decision as granted,
so its approval-rate tests would pass vacuously. Such tests are switched off for that
model and reported as not applicable, with the reason, so the evidence says why they
did not count. The same rule as the sandbox gates (``analysis.validation``).
"""

from __future__ import annotations

from contracts.fairness import LiveMetric, LiveThresholds

_ON_AMOUNTS: dict[str, tuple[LiveMetric, ...]] = {
    "min_group_mean_ratio": (LiveMetric.GROUP_MEAN_RATIO,),
    "max_conditional_disparity": (LiveMetric.CONDITIONAL_DISPARITY,),
}
_ON_DECISIONS: dict[str, tuple[LiveMetric, ...]] = {
    "min_disparate_impact_ratio": (LiveMetric.DISPARATE_IMPACT_RATIO,),
    "max_demographic_parity_difference": (LiveMetric.DEMOGRAPHIC_PARITY_DIFFERENCE,),
    "max_equalized_odds_difference": (
        LiveMetric.EQUALIZED_ODDS_TPR_DIFFERENCE,
        LiveMetric.EQUALIZED_ODDS_FPR_DIFFERENCE,
    ),
    "max_approval_rate_shift": (LiveMetric.APPROVAL_RATE_SHIFT,),
    "max_error_rate_increase": (LiveMetric.ERROR_RATE_INCREASE,),
}

Unmeasurable = tuple[LiveMetric, float, str]
"""A switched-off test: its metric, the playbook's threshold, and why it does not apply."""


def measurable(
    thresholds: LiveThresholds, *, decision: bool, amount: bool
) -> tuple[LiveThresholds, list[Unmeasurable]]:
    """``thresholds`` with the tests on outcomes the model does not make switched off,
    and those tests, each with the reason."""
    off: dict[str, None] = {}
    unmeasurable: list[Unmeasurable] = []
    for makes, outcome, tests in (
        (amount, "amount", _ON_AMOUNTS),
        (decision, "binary decision", _ON_DECISIONS),
    ):
        if makes:
            continue
        for name, metrics in tests.items():
            threshold = getattr(thresholds, name)
            if threshold is None:
                continue
            off[name] = None
            why = f"the model makes no {outcome} (manifest outcomes), so this test does not apply"
            unmeasurable += [(metric, threshold, why) for metric in metrics]
    return thresholds.model_copy(update=off), unmeasurable

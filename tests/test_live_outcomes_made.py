"""Live tests on an outcome the model does not make are not applicable, not inconclusive.

A decision-only model (a hiring screen: hire / no hire) has no amount: with the stock
playbook's ``max_conditional_disparity`` on, its canary stayed inconclusive at every
look ("no stratum has 5 approved decisions of both groups yet") and could never pass,
and its drift monitor never settled a reference. Now the canary and the monitor ask the
registry which outcomes the model makes; the amount tests are reported not applicable,
with the reason, and spend none of the look's alpha.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.canary import CanaryActivities
from activities.monitor import MonitorActivities
from contracts.canary import AnalysisRequest, CanaryAnalysis
from contracts.fairness import LiveMetric, LiveThresholds, MetricVerdict
from contracts.metrics import DecisionCell, DecisionWindow, Side
from contracts.model import ModelManifest
from contracts.monitoring import EvaluationRequest, EvaluationResult, MonitoringPolicy
from contracts.targets import RouterRef
from fairness.drift import judge_monitor_window
from fairness.live import analyse_window

SINCE = datetime(2026, 12, 1, tzinfo=UTC)
UNTIL = SINCE + timedelta(hours=2)
STOCK = LiveThresholds()  # the playbook defaults: amount tests on, guards on


def decided(group: str, side: Side, total: int, hired: int) -> list[DecisionCell]:
    """A decision-only model's cells: approvals carry no amount (the store sums None as 0)."""
    return [
        DecisionCell(
            side=side,
            group=group,
            stratum="mid",
            approved=approved,
            outcome=None,
            count=count,
            amount_sum=0.0,
            amount_sumsq=0.0,
        )
        for approved, count in ((True, hired), (False, total - hired))
        if count
    ]


def fair_hiring() -> list[DecisionCell]:
    """A candidate hiring 40% of each group, beside a stable side hiring 42%."""
    cells: list[DecisionCell] = []
    for group in ("a", "b", "c"):
        cells += decided(group, Side.CANDIDATE, 1_000, 400)
        cells += decided(group, Side.STABLE, 1_000, 420)
    return cells


def manifest(*, decision: str | None, amount: str | None) -> ModelManifest:
    return ModelManifest.model_validate(
        {
            "id": "screen",
            "versions": [{"version": "v1", "artifact": "screen/v1.skops"}],
            "primary_version": "v1",
            "features": [{"name": "score", "type": "numeric"}],
            "outcomes": {"decision": decision, "amount": amount},
            "protected_attributes": ["g"],
            "groups": {"g": ["a", "b", "c"]},
            "router": {"target": "screen-gateway"},
        }
    )


def test_amount_tests_hold_a_decision_only_window_open_unless_told_the_model_makes_none() -> None:
    judged_on_both = analyse_window(fair_hiring(), STOCK, alpha=0.05)
    assert judged_on_both.verdict is MetricVerdict.INCONCLUSIVE  # the defect, as it was
    assert "conditional_disparity" in judged_on_both.headline

    analysis = analyse_window(fair_hiring(), STOCK, alpha=0.05, decision=True, amount=False)
    assert analysis.verdict is MetricVerdict.PASS, analysis.headline
    (gap,) = [r for r in analysis.results if r.metric is LiveMetric.CONDITIONAL_DISPARITY]
    assert gap.verdict is MetricVerdict.NOT_APPLICABLE
    assert gap.threshold == STOCK.max_conditional_disparity
    assert "makes no amount" in gap.reason
    # three pairs x (DI, DP, TPR, FPR) + two guards: the amount test spends no alpha
    assert judged_on_both.comparisons == 3 * 5 + 2
    assert analysis.comparisons == 3 * 4 + 2
    assert analysis.comparison_alpha > judged_on_both.comparison_alpha
    shift = next(r for r in analysis.results if r.metric is LiveMetric.APPROVAL_RATE_SHIFT)
    assert shift.verdict is MetricVerdict.PASS  # the guards still judge


def test_an_amount_only_model_has_no_approval_rates_to_compare() -> None:
    analysis = analyse_window(fair_hiring(), STOCK, alpha=0.05, decision=False, amount=True)
    off = {r.metric for r in analysis.results if r.verdict is MetricVerdict.NOT_APPLICABLE}
    assert off == {
        LiveMetric.DISPARATE_IMPACT_RATIO,
        LiveMetric.DEMOGRAPHIC_PARITY_DIFFERENCE,
        LiveMetric.EQUALIZED_ODDS_TPR_DIFFERENCE,
        LiveMetric.EQUALIZED_ODDS_FPR_DIFFERENCE,
        LiveMetric.APPROVAL_RATE_SHIFT,
        LiveMetric.ERROR_RATE_INCREASE,
    }
    assert analysis.comparisons == 3  # the conditional disparity, per pair


class OneWindow:
    """A provider answering every look with the same cells."""

    name = "fixed"

    def __init__(self, cells: list[DecisionCell]) -> None:
        self.cells = cells

    async def window(
        self,
        router: RouterRef,
        model: str,
        candidate_version: str,
        since: datetime,
        until: datetime,
    ) -> DecisionWindow:
        return DecisionWindow(
            model=model,
            candidate_version=candidate_version,
            since=since,
            until=until,
            provider=self.name,
            cells=self.cells,
        )


async def test_the_canary_activity_judges_a_model_on_the_outcomes_its_manifest_declares() -> None:
    screen = manifest(decision="hired", amount=None)
    request = AnalysisRequest(
        incident_id="inc-1",
        target="screen-gateway",
        model=screen.id,
        provider="fixed",
        candidate_version="v2",
        since=SINCE,
        until=UNTIL,
        look=1,
        alpha=0.05,
        thresholds=STOCK,
    )
    provider = OneWindow(fair_hiring())
    registered = CanaryActivities({"fixed": provider}, {screen.id: screen}.get)
    result: CanaryAnalysis = await registered.canary_analysis(request)
    assert result.verdict is MetricVerdict.PASS, result.analysis.headline

    nobody: dict[str, ModelManifest] = {}
    unknown = CanaryActivities({"fixed": provider}, nobody.get)  # not registered: judged on both
    assert (await unknown.canary_analysis(request)).verdict is MetricVerdict.INCONCLUSIVE


async def test_the_monitor_settles_on_a_decision_only_model() -> None:
    screen = manifest(decision="hired", amount=None)
    live = [c for c in fair_hiring() if c.side is Side.STABLE]
    policy = MonitoringPolicy(max_psi=None)
    judged_on_both, _, _ = judge_monitor_window(live, policy, None)
    assert judged_on_both.verdict is MetricVerdict.INCONCLUSIVE

    request = EvaluationRequest(
        target="screen-gateway", model=screen.id, since=SINCE, until=UNTIL, policy=policy
    )
    monitor = MonitorActivities({"decision_log": OneWindow(live)}, {screen.id: screen}.get)
    result: EvaluationResult = await monitor.evaluate_monitor_window(request)
    assert result.evaluation.verdict is MetricVerdict.PASS, result.evaluation.headline

"""Gates: judged on the unsafe confidence bound; too-small groups never pass."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from fairness.gates import Gate, GateReport, GateSpec, Verdict, evaluate_gates
from fairness.group_metrics import (
    Disparity,
    FairnessReport,
    SlicingMetrics,
    Status,
    measure_fairness,
)
from fairness.intervals import Interval


def interval(estimate: float, lower: float, upper: float) -> Interval:
    return Interval(estimate=estimate, lower=lower, upper=upper, confidence=0.99, method="test")


def disparity(value: Interval | None, excluded: list[str] | None = None) -> Disparity:
    return Disparity(
        status=Status.INCONCLUSIVE if value is None else Status.MEASURED,
        estimate=None if value is None else value.estimate,
        interval=value,
        groups=["A", "B"] if value is not None else ["A"],
        excluded_groups=excluded or [],
        extremes=["B", "A"] if value is not None else [],
        note="hand-made",
    )


def report(
    di: Interval | None = None,
    eo: Interval | None = None,
    cond: Interval | None = None,
    excluded: list[str] | None = None,
) -> FairnessReport:
    safe = {
        "di": interval(0.95, 0.9, 1.0),
        "eo": interval(0.01, 0.0, 0.03),
        "cond": interval(0.005, 0.0, 0.01),
    }
    slicing = SlicingMetrics(
        name="group",
        attributes=["group"],
        groups=[],
        disparate_impact_ratio=disparity(di or safe["di"], excluded),
        demographic_parity_difference=None,
        equalized_odds_difference=disparity(eo or safe["eo"], excluded),
        group_mean_ratio=None,
        conditional_amount_disparity=disparity(cond or safe["cond"], excluded),
        conditional_detail=None,
    )
    return FairnessReport(
        rows=1_000,
        amount_rows=800,
        min_group_size=30,
        alpha=0.05,
        comparisons=5,
        corrected_alpha=0.01,
        bootstrap_samples=400,
        slicings=[slicing],
    )


def with_metric(field: str, value: Interval) -> FairnessReport:
    return report(eo=value) if field == "eo" else report(cond=value)


SMALL_LOSS = interval(0.005, -0.002, 0.012)


def result(gates: GateReport, gate: Gate) -> tuple[Verdict, str]:
    (found,) = [r for r in gates.results if r.gate is gate]
    return found.verdict, found.reason


def test_defaults_are_the_issue_s() -> None:
    spec = GateSpec()
    assert spec.disparate_impact_ratio == 0.8
    assert spec.equalized_odds_difference == 0.05
    assert spec.conditional_amount_disparity == 0.015
    assert spec.accuracy_loss == 0.02
    assert (spec.min_group_size, spec.alpha, spec.bootstrap_samples) == (30, 0.05, 400)
    with pytest.raises(ValidationError):
        GateSpec(disparate_impact_ratio=1.5)
    with pytest.raises(ValidationError):
        GateSpec.model_validate({"disparate_impact": 0.8})  # a typo is not silently ignored


def test_everything_inside_its_bound_passes() -> None:
    gates = evaluate_gates(report(), GateSpec(), accuracy_loss=SMALL_LOSS)
    assert gates.verdict is Verdict.PASS and gates.passed
    assert len(gates.results) == 4
    assert not gates.failures


def test_disparate_impact_is_judged_on_its_lower_bound() -> None:
    point_passes = evaluate_gates(
        report(di=interval(0.86, 0.74, 0.97)), GateSpec(), accuracy_loss=SMALL_LOSS
    )
    verdict, reason = result(point_passes, Gate.DISPARATE_IMPACT_RATIO)
    assert verdict is Verdict.FAIL
    assert reason.startswith("disparate-impact ratio (group) lower bound 0.74 < 0.80")
    on_the_line = evaluate_gates(
        report(di=interval(0.9, 0.8, 1.0)), GateSpec(), accuracy_loss=SMALL_LOSS
    )
    assert result(on_the_line, Gate.DISPARATE_IMPACT_RATIO)[0] is Verdict.PASS


@pytest.mark.parametrize(
    ("gate", "field", "threshold"),
    [
        (Gate.EQUALIZED_ODDS_DIFFERENCE, "eo", 0.05),
        (Gate.CONDITIONAL_AMOUNT_DISPARITY, "cond", 0.015),
    ],
)
def test_at_most_gates_are_judged_on_their_upper_bound(
    gate: Gate, field: str, threshold: float
) -> None:
    straddling = interval(threshold / 2, 0.0, threshold * 1.5)
    gates = evaluate_gates(with_metric(field, straddling), GateSpec(), accuracy_loss=SMALL_LOSS)
    verdict, reason = result(gates, gate)
    assert verdict is Verdict.FAIL
    assert "upper bound" in reason and " > " in reason
    on_the_line = interval(threshold / 2, 0.0, threshold)
    gates = evaluate_gates(with_metric(field, on_the_line), GateSpec(), accuracy_loss=SMALL_LOSS)
    assert result(gates, gate)[0] is Verdict.PASS


def test_accuracy_loss_is_judged_on_its_upper_bound_and_needs_a_label() -> None:
    too_costly = evaluate_gates(report(), GateSpec(), accuracy_loss=interval(0.015, 0.01, 0.025))
    verdict, reason = result(too_costly, Gate.ACCURACY_LOSS)
    assert verdict is Verdict.FAIL
    assert reason.startswith("accuracy loss upper bound 2.50% > 2.00%")
    unlabelled = evaluate_gates(report(), GateSpec(), accuracy_loss=None)
    assert result(unlabelled, Gate.ACCURACY_LOSS)[0] is Verdict.INCONCLUSIVE
    assert unlabelled.verdict is Verdict.INCONCLUSIVE


def test_a_pass_that_leaves_a_small_group_out_is_inconclusive() -> None:
    gates = evaluate_gates(
        report(excluded=["C (fewer than 30 rows: 12)"]), GateSpec(), accuracy_loss=SMALL_LOSS
    )
    verdict, reason = result(gates, Gate.DISPARATE_IMPACT_RATIO)
    assert verdict is Verdict.INCONCLUSIVE
    assert "C (fewer than 30 rows: 12)" in reason
    assert gates.verdict is Verdict.INCONCLUSIVE and not gates.passed


def test_a_failure_outweighs_an_inconclusive_gate() -> None:
    gates = evaluate_gates(report(di=interval(0.5, 0.4, 0.6)), GateSpec(), accuracy_loss=None)
    assert gates.verdict is Verdict.FAIL
    assert [r.gate for r in gates.failures] == [Gate.DISPARATE_IMPACT_RATIO]


def test_an_unmeasurable_metric_is_inconclusive() -> None:
    unmeasured = report()
    slicing = unmeasured.slicings[0].model_copy(
        update={"equalized_odds_difference": None, "conditional_amount_disparity": disparity(None)}
    )
    gates = evaluate_gates(
        unmeasured.model_copy(update={"slicings": [slicing]}), GateSpec(), accuracy_loss=SMALL_LOSS
    )
    assert result(gates, Gate.EQUALIZED_ODDS_DIFFERENCE)[0] is Verdict.INCONCLUSIVE
    verdict, reason = result(gates, Gate.CONDITIONAL_AMOUNT_DISPARITY)
    assert verdict is Verdict.INCONCLUSIVE and "hand-made" in reason


def test_a_gate_switched_off_is_not_judged() -> None:
    spec = GateSpec(equalized_odds_difference=None, accuracy_loss=None)
    gates = evaluate_gates(report(), spec, accuracy_loss=None)
    assert {r.gate for r in gates.results} == {
        Gate.DISPARATE_IMPACT_RATIO,
        Gate.CONDITIONAL_AMOUNT_DISPARITY,
    }
    assert gates.verdict is Verdict.PASS


def simulated(n: int, seed: int, *, b_factor: float = 1.0, small_group: int = 0) -> FairnessReport:
    """Two groups, approvals driven by the label and amounts by the stratum, with group B's
    approvals and amounts scaled by ``b_factor``; optionally a third group that small."""
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n) < 0.5, "B", "A")
    group[:small_group] = "C"
    stratum = rng.choice(["low", "high"], n)
    label = rng.random(n) < 0.5
    odds = np.where(label, 0.8, 0.2) * np.where(group == "B", b_factor, 1.0)
    approved = rng.random(n) < odds
    amount = np.where(stratum == "low", 1_000.0, 4_000.0) * rng.lognormal(0.0, 0.2, n)
    amount *= np.where(group == "B", b_factor, 1.0)
    return measure_fairness(
        {"group": group},
        decided=approved,
        labels=label,
        amounts=amount,
        strata=stratum,
        extra_comparisons=1,
        rng=np.random.default_rng(seed),
    )


def test_equal_groups_pass_every_fairness_gate() -> None:
    gates = evaluate_gates(simulated(20_000, 1), GateSpec(), accuracy_loss=SMALL_LOSS)
    assert gates.verdict is Verdict.PASS, [r.reason for r in gates.results]


def test_a_true_20_percent_disparity_is_caught() -> None:
    gates = evaluate_gates(simulated(10_000, 2, b_factor=0.8), GateSpec(), accuracy_loss=SMALL_LOSS)
    assert gates.verdict is Verdict.FAIL
    assert {r.gate for r in gates.failures} == {
        Gate.DISPARATE_IMPACT_RATIO,
        Gate.EQUALIZED_ODDS_DIFFERENCE,
        Gate.CONDITIONAL_AMOUNT_DISPARITY,
    }
    (amounts,) = [r for r in gates.results if r.gate is Gate.CONDITIONAL_AMOUNT_DISPARITY]
    assert amounts.estimate == pytest.approx(0.2, abs=0.01)


def test_a_group_under_the_minimum_size_is_inconclusive_not_passing() -> None:
    gates = evaluate_gates(
        simulated(20_000, 1, small_group=20), GateSpec(), accuracy_loss=SMALL_LOSS
    )
    assert gates.verdict is Verdict.INCONCLUSIVE
    fairness_gates = [r for r in gates.results if r.gate is not Gate.ACCURACY_LOSS]
    assert all(r.verdict is Verdict.INCONCLUSIVE for r in fairness_gates)
    assert all("C (fewer than 30" in r.reason for r in fairness_gates)


def test_the_report_survives_json() -> None:
    gates = evaluate_gates(report(di=interval(0.5, 0.4, 0.6)), GateSpec(), accuracy_loss=None)
    assert GateReport.model_validate_json(gates.model_dump_json()) == gates

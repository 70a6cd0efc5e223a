"""Fairness gates: a candidate model passes only what its confidence intervals demonstrate.

Every gate is judged on the confidence bound on the unsafe side of its threshold,
never on the point estimate, so "parity holds" is a statistical claim:

* ``disparate_impact_ratio >= t`` passes when the interval's LOWER bound is >= t;
* ``equalized_odds_difference``, ``conditional_amount_disparity`` and
  ``accuracy_loss <= t`` pass when the interval's UPPER bound is <= t.

An interval that straddles the threshold fails: the burden of proof is on the
candidate (a remediation loop can add data or try again; a biased model must not
slip through on noise). ``inconclusive`` is kept for what cannot be judged at all:
too few groups large enough to compare, no label to measure accuracy or equalized
odds against, or a gate that would pass but leaves out a group too small to judge
(no claim is made about that group, so no pass either).

Fairness gates are judged on every slicing (each protected attribute and every
intersection) and a gate fails if any slicing fails. Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from fairness.group_metrics import Disparity, FairnessReport, SlicingMetrics, Status
from fairness.intervals import Interval


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class Gate(StrEnum):
    DISPARATE_IMPACT_RATIO = "disparate_impact_ratio"
    EQUALIZED_ODDS_DIFFERENCE = "equalized_odds_difference"
    CONDITIONAL_AMOUNT_DISPARITY = "conditional_amount_disparity"
    ACCURACY_LOSS = "accuracy_loss"


_LABELS: dict[Gate, str] = {
    Gate.DISPARATE_IMPACT_RATIO: "disparate-impact ratio",
    Gate.EQUALIZED_ODDS_DIFFERENCE: "equalized-odds difference",
    Gate.CONDITIONAL_AMOUNT_DISPARITY: "conditional amount disparity",
    Gate.ACCURACY_LOSS: "accuracy loss",
}


def _also(playbook_name: str, name: str) -> AliasChoices:
    return AliasChoices(name, playbook_name)


class GateSpec(BaseModel):
    """Thresholds from the playbook; a threshold of None switches that gate off.

    ``alpha`` is the family-wise error rate the intervals are corrected to, and
    ``min_group_size`` the fewest rows (or, for a rate, trials) a group needs to be judged.
    A playbook's ``gates:`` block (``min_disparate_impact_ratio``, ``max_…``) validates
    into it as it is: each field also takes the playbook's name for it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    disparate_impact_ratio: float | None = Field(
        default=0.8,
        gt=0,
        le=1,
        validation_alias=_also("min_disparate_impact_ratio", "disparate_impact_ratio"),
    )
    equalized_odds_difference: float | None = Field(
        default=0.05,
        ge=0,
        le=1,
        validation_alias=_also("max_equalized_odds_difference", "equalized_odds_difference"),
    )
    conditional_amount_disparity: float | None = Field(
        default=0.015,
        ge=0,
        le=1,
        validation_alias=_also("max_conditional_amount_disparity", "conditional_amount_disparity"),
    )
    accuracy_loss: float | None = Field(
        default=0.02, ge=-1, le=1, validation_alias=_also("max_accuracy_loss", "accuracy_loss")
    )
    min_group_size: int = Field(default=30, ge=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    bootstrap_samples: int = Field(default=400, ge=50)


class GateResult(BaseModel):
    """One gate on one slicing (``slicing`` is None for accuracy, a whole-population figure)."""

    model_config = ConfigDict(frozen=True)

    gate: Gate
    slicing: str | None
    verdict: Verdict
    judged_on: Literal["lower", "upper"]
    threshold: float
    estimate: float | None
    interval: Interval | None
    reason: str


class GateReport(BaseModel):
    """Every gate result and the overall verdict: pass only if every gate passes."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    results: list[GateResult]

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def failures(self) -> list[GateResult]:
        return [result for result in self.results if result.verdict is Verdict.FAIL]


def evaluate_gates(
    fairness: FairnessReport, spec: GateSpec, *, accuracy_loss: Interval | None
) -> GateReport:
    """Judge the candidate's measured fairness (and accuracy loss against the baseline).

    ``accuracy_loss`` is baseline accuracy minus candidate accuracy with its interval,
    or None when there is no label to measure accuracy against.
    """
    results: list[GateResult] = []
    for slicing in fairness.slicings:
        if spec.disparate_impact_ratio is not None:
            results.append(
                _judge_disparity(
                    Gate.DISPARATE_IMPACT_RATIO,
                    slicing,
                    slicing.disparate_impact_ratio,
                    spec.disparate_impact_ratio,
                    "no binary decision to measure",
                )
            )
        if spec.equalized_odds_difference is not None:
            results.append(
                _judge_disparity(
                    Gate.EQUALIZED_ODDS_DIFFERENCE,
                    slicing,
                    slicing.equalized_odds_difference,
                    spec.equalized_odds_difference,
                    "no decision and label to measure equalized odds against",
                )
            )
        if spec.conditional_amount_disparity is not None:
            results.append(
                _judge_disparity(
                    Gate.CONDITIONAL_AMOUNT_DISPARITY,
                    slicing,
                    slicing.conditional_amount_disparity,
                    spec.conditional_amount_disparity,
                    "no amount and strata to measure",
                )
            )
    if spec.accuracy_loss is not None:
        results.append(_judge_accuracy(accuracy_loss, spec.accuracy_loss))
    return GateReport(verdict=_overall(results), results=results)


def _judge_disparity(
    gate: Gate,
    slicing: SlicingMetrics,
    disparity: Disparity | None,
    threshold: float,
    unmeasured: str,
) -> GateResult:
    where = f"{_LABELS[gate]} ({slicing.name})"
    if disparity is None:
        return _unjudged(gate, slicing.name, threshold, f"{where}: {unmeasured}")
    if disparity.status is Status.INCONCLUSIVE or disparity.interval is None:
        return _unjudged(gate, slicing.name, threshold, f"{where}: {disparity.note}")
    result = _judge(gate, slicing.name, disparity.interval, threshold)
    if result.verdict is Verdict.PASS and disparity.excluded_groups:
        reason = (
            f"{result.reason}, but groups too small to judge are left out: "
            f"{', '.join(disparity.excluded_groups)}"
        )
        return result.model_copy(update={"verdict": Verdict.INCONCLUSIVE, "reason": reason})
    return result


def _judge_accuracy(loss: Interval | None, threshold: float) -> GateResult:
    if loss is None:
        reason = "accuracy loss: no label to measure accuracy against"
        return _unjudged(Gate.ACCURACY_LOSS, None, threshold, reason)
    return _judge(Gate.ACCURACY_LOSS, None, loss, threshold)


def _judge(gate: Gate, slicing: str | None, interval: Interval, threshold: float) -> GateResult:
    where = _LABELS[gate] if slicing is None else f"{_LABELS[gate]} ({slicing})"
    at_least = gate is Gate.DISPARATE_IMPACT_RATIO
    bound = interval.lower if at_least else interval.upper
    passed = bound >= threshold if at_least else bound <= threshold
    side = "lower" if at_least else "upper"
    relation = {(True, True): ">=", (True, False): "<", (False, True): "<=", (False, False): ">"}[
        (at_least, passed)
    ]
    reason = (
        f"{where} {side} bound {_figure(gate, bound)} {relation} {_figure(gate, threshold)} "
        f"(estimate {_figure(gate, interval.estimate)}, "
        f"{interval.confidence:.2%} interval)"
    )
    return GateResult(
        gate=gate,
        slicing=slicing,
        verdict=Verdict.PASS if passed else Verdict.FAIL,
        judged_on=side,
        threshold=threshold,
        estimate=interval.estimate,
        interval=interval,
        reason=reason,
    )


def _unjudged(gate: Gate, slicing: str | None, threshold: float, reason: str) -> GateResult:
    return GateResult(
        gate=gate,
        slicing=slicing,
        verdict=Verdict.INCONCLUSIVE,
        judged_on="lower" if gate is Gate.DISPARATE_IMPACT_RATIO else "upper",
        threshold=threshold,
        estimate=None,
        interval=None,
        reason=reason,
    )


def _overall(results: list[GateResult]) -> Verdict:
    verdicts = {result.verdict for result in results}
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if Verdict.INCONCLUSIVE in verdicts:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


def _figure(gate: Gate, value: float) -> str:
    """Ratios and rate differences as plain numbers (0.74), amount and accuracy as percent."""
    if gate is Gate.DISPARATE_IMPACT_RATIO:
        return f"{value:.2f}"
    if gate is Gate.EQUALIZED_ODDS_DIFFERENCE:
        return f"{value:.3f}"
    return f"{value:.2%}"


_DISPARITIES: dict[Gate, str] = {
    Gate.DISPARATE_IMPACT_RATIO: "disparate_impact_ratio",
    Gate.EQUALIZED_ODDS_DIFFERENCE: "equalized_odds_difference",
    Gate.CONDITIONAL_AMOUNT_DISPARITY: "conditional_amount_disparity",
}


def driving_group(result: GateResult, fairness: FairnessReport) -> str | None:
    """Who a failed or inconclusive gate is about, in words; None for a pass or for accuracy.

    A failure is driven by the worst-off group of its slicing (against the best-off one);
    an inconclusive gate by the groups too small to judge, or by there being too few.
    """
    if result.verdict is Verdict.PASS or result.slicing is None or result.gate not in _DISPARITIES:
        return None
    slicing = next((s for s in fairness.slicings if s.name == result.slicing), None)
    disparity: Disparity | None = (
        None if slicing is None else getattr(slicing, _DISPARITIES[result.gate])
    )
    if disparity is None:
        return None
    if result.verdict is Verdict.FAIL and disparity.extremes:
        worst = disparity.extremes[0]
        best = f" (vs {disparity.extremes[-1]})" if len(disparity.extremes) > 1 else ""
        return f"{result.slicing}={worst}{best}"
    if disparity.excluded_groups:
        return f"{result.slicing}: too small to judge: {', '.join(disparity.excluded_groups)}"
    return f"{result.slicing}: fewer than two groups large enough to compare"

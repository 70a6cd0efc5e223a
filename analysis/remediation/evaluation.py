"""What each candidate costs and gains on the validation data, and which one is kept.

Every model (the parent first) is measured the same way: its quality against the data
(decision accuracy against the label; R² of the amounts for a model that only sets
amounts), the disparate-impact ratio of its decisions, and the amount disparity inside
strata of comparable rows. Quality is measured against historical outcomes, which carry
the very bias being removed: some loss is the price of not reproducing it, hence a
bound rather than a goal.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, JsonValue

from analysis.remediation.setting import Candidate, Setting, Targets, binary
from fairness.outcomes import conditional_disparity, disparate_impact_ratio, selection_rates


class TradeOffPoint(BaseModel):
    """One model's quality and fairness on the validation data (None: not measurable)."""

    model_config = ConfigDict(frozen=True)

    name: str  # "parent", or the strategy with its non-default settings
    strategy: str
    parameters: dict[str, JsonValue]
    deployable: bool
    not_deployable_reason: str | None
    accuracy: float  # decision vs label; R² of the amounts when there is no decision
    accuracy_measure: Literal["accuracy", "r2"] = "accuracy"
    accuracy_loss: float  # parent's accuracy minus this one's
    selection_rates: dict[str, dict[str, float]]  # attribute -> group -> rate
    disparate_impact_ratio: float | None  # the worst attribute's
    amount_disparity: float | None  # the worst attribute's conditional gap, granted rows
    amount_disparity_by_attribute: dict[str, float | None]
    amount_error: float | None  # median |predicted / historical - 1| where an amount was given
    fairness_score: float | None  # worst of gap / target and (1 - ratio) / (1 - target)
    meets_fairness_targets: bool
    within_accuracy_bound: bool
    seconds: float
    notes: list[str]


def evaluate(
    candidate: Candidate,
    name: str,
    seconds: float,
    setting: Setting,
    targets: Targets,
    baseline: TradeOffPoint | None,
    min_stratum_rows: int,
) -> TradeOffPoint:
    frame, columns = setting.validation, setting.columns
    decided = None if candidate.decide is None else candidate.decide(frame)
    granted = np.ones(len(frame), dtype=bool) if decided is None else decided
    strata = columns.stratum_labels(frame)
    amounts = None
    if candidate.amounts is not None:
        amounts = candidate.amounts(frame[granted]) if granted.any() else np.zeros(0)
    rates: dict[str, dict[str, float]] = {}
    ratios: dict[str, float] = {}
    gaps: dict[str, float | None] = {}
    for attribute in columns.protected:
        groups = frame[attribute].to_numpy()
        if decided is not None:
            rates[attribute] = selection_rates(decided, groups)
            ratios[attribute] = disparate_impact_ratio(decided, groups)
        if amounts is not None:
            gaps[attribute] = (
                conditional_disparity(
                    amounts, groups[granted], strata[granted], min_count=min_stratum_rows
                ).relative_gap
                if granted.any()
                else None
            )
    ratio = min(ratios.values()) if ratios else None
    known_gaps = [gap for gap in gaps.values() if gap is not None]
    amount_gap = max(known_gaps) if known_gaps else None
    terms = []
    if amount_gap is not None:
        terms.append(amount_gap / targets.max_amount_disparity)
    if ratio is not None:
        terms.append((1.0 - ratio) / (1.0 - targets.min_disparate_impact))
    score = max(terms) if terms else None
    measure, accuracy = _quality(candidate, decided, setting)
    loss = 0.0 if baseline is None else baseline.accuracy - accuracy
    return TradeOffPoint(
        name=name,
        strategy=candidate.strategy,
        parameters=candidate.parameters,
        deployable=candidate.models is not None,
        not_deployable_reason=candidate.not_deployable_reason,
        accuracy=accuracy,
        accuracy_measure=measure,
        accuracy_loss=loss,
        selection_rates=rates,
        disparate_impact_ratio=ratio,
        amount_disparity=amount_gap,
        amount_disparity_by_attribute=gaps,
        amount_error=_amount_error(candidate, setting),
        fairness_score=score,
        meets_fairness_targets=score is not None and score <= 1.0,
        within_accuracy_bound=loss <= targets.max_accuracy_loss,
        seconds=seconds,
        notes=list(candidate.notes),
    )


def _quality(
    candidate: Candidate, decided: npt.NDArray[np.bool_] | None, setting: Setting
) -> tuple[Literal["accuracy", "r2"], float]:
    """Decision accuracy against the label; else R² of the amounts against the data's."""
    frame = setting.validation
    if decided is not None and setting.target is not None:
        truth = binary(frame[setting.target], setting.target)
        return "accuracy", float(np.mean(decided == truth))
    assert candidate.amounts is not None and setting.columns.amount is not None
    actual = frame[setting.columns.amount].to_numpy(dtype=np.float64)
    predicted = candidate.amounts(frame)
    spread = float(np.sum((actual - actual.mean()) ** 2))
    residual = float(np.sum((actual - predicted) ** 2))
    return "r2", 1.0 - residual / spread if spread > 0 else 0.0


def _amount_error(candidate: Candidate, setting: Setting) -> float | None:
    """Median relative error against the historical amounts (which carry the bias)."""
    amount = setting.columns.amount
    if candidate.amounts is None or amount is None:
        return None
    frame = setting.validation
    given = frame[amount].to_numpy(dtype=np.float64) > 0
    granted_by = setting.columns.decision or setting.target
    if candidate.decide is not None and granted_by is not None:
        given &= binary(frame[granted_by], granted_by)
    if not given.any():
        return None
    actual = frame.loc[given, amount].to_numpy(dtype=np.float64)
    return float(np.median(np.abs(candidate.amounts(frame[given]) / actual - 1.0)))


def choose(
    points: list[TradeOffPoint], targets: Targets, rows: int
) -> tuple[TradeOffPoint | None, str]:
    """Fair and accurate enough, simplest first; else the fairest within the bound; else fairest.

    Accuracies within one standard error of the best (binomial, on ``rows`` validation rows)
    are indistinguishable, and the playbook lists its strategies simplest first: among fair
    candidates that close, the earliest one wins rather than a more complex model that is
    more accurate only by noise.
    """

    def fairness(point: TradeOffPoint) -> float:
        return np.inf if point.fairness_score is None else point.fairness_score

    deployable = [point for point in points if point.deployable]
    if not deployable:
        return None, "no strategy produced a candidate a gateway can serve"
    within = [point for point in deployable if point.within_accuracy_bound]
    fair = [point for point in within if point.meets_fairness_targets]
    if fair:
        best = max(point.accuracy for point in fair)
        binomial = fair[0].accuracy_measure == "accuracy"
        noise = float(np.sqrt(best * (1.0 - best) / rows)) if binomial else 0.0
        chosen = next(point for point in fair if point.accuracy >= best - noise)
        return chosen, (
            "the first strategy in playbook order that meets the fairness targets within the "
            f"accuracy bound, its accuracy within one standard error ({noise:.1%}) of the best"
        )
    if within:
        return min(within, key=fairness), (
            "no candidate met the fairness targets within the accuracy bound: the fairest within it"
        )
    return min(deployable, key=fairness), (
        f"no candidate kept accuracy within {targets.max_accuracy_loss:.1%} of the parent: "
        "the fairest one, at a larger accuracy cost"
    )


def headline(
    baseline: TradeOffPoint,
    chosen: TradeOffPoint | None,
    selection: str,
    amount: str | None,
    targets: Targets,
) -> str:
    if chosen is None:
        return f"no candidate: {selection}"

    def gap(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    parts = []
    if chosen.amount_disparity is not None or baseline.amount_disparity is not None:
        parts.append(
            f"conditional {amount or 'amount'} disparity {gap(baseline.amount_disparity)} -> "
            f"{gap(chosen.amount_disparity)}"
        )
    if baseline.disparate_impact_ratio is not None and chosen.disparate_impact_ratio is not None:
        parts.append(
            f"disparate-impact ratio {baseline.disparate_impact_ratio:.2f} -> "
            f"{chosen.disparate_impact_ratio:.2f}"
        )
    measure = "accuracy" if chosen.accuracy_measure == "accuracy" else "R²"
    parts.append(
        f"{measure} {baseline.accuracy:.1%} -> {chosen.accuracy:.1%} "
        f"(bound: {targets.max_accuracy_loss:.1%} loss)"
    )
    text = f"{chosen.name}: " + ", ".join(parts)
    if not (chosen.meets_fairness_targets and chosen.within_accuracy_bound):
        text += f"; {selection}"
    return text

"""Sandbox validation (step C): is the candidate fairer than the serving model, demonstrably?

Both models score the same held-out rows, a balanced edge-case suite and counterfactual
twins (:mod:`analysis.counterfactual`). Each gets every group metric on every slicing
with intervals (:mod:`fairness.group_metrics`) and its accuracy against the label;
the candidate is then judged by the gates (:mod:`fairness.gates`), including the
accuracy it gives up against the baseline.

One family-wise error rate covers the held-out report: the Bonferroni m counts every
interval the gated aggregates rest on, plus the accuracy loss. The edge-case suite and
the counterfactual flip rates are evidence for people, not gated, and get intervals at
the family level of their own reports.

Models enter as scorers, ``frame -> (decision, amount)``, so any model that can score
a data frame can be validated; :func:`scorer_from_artifact` and :func:`scorer_from_file`
adapt any artifact the one loader opens (:mod:`analysis.models`: an artifact dict, or a
bare scikit-learn estimator or pipeline) through the one scorer (:mod:`analysis.scoring`).
The roles of the columns come from the model's manifest (:class:`~analysis.columns.ModelColumns`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict
from threadpoolctl import threadpool_limits

from analysis import scoring
from analysis.columns import ModelColumns
from analysis.counterfactual import (
    CounterfactualPairs,
    CounterfactualReport,
    balanced_profiles,
    counterfactual_flip_rate,
    counterfactual_pairs,
    stratum_labels,
)
from analysis.models import ModelFileError, Outcome, load_artifact, open_model_file
from fairness.gates import GateReport, GateSpec, Verdict, evaluate_gates
from fairness.group_metrics import FairnessReport, measure_fairness
from fairness.intervals import FloatArray, Interval, stratified_bootstrap, wilson_interval
from playbooks.steps import Gates
from store.artifacts import ArtifactStore

Scores = tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]
Scorer = Callable[[pd.DataFrame], Scores]
"""Scores a frame of rows: (decision, amount), one of each per row. A model without a
decision grants every row; one without an amount gives 0."""


class ModelValidation(BaseModel):
    """Everything measured for one model."""

    model_config = ConfigDict(frozen=True)

    held_out: FairnessReport
    edge_cases: FairnessReport
    accuracy: Interval | None  # against the label; None without one
    counterfactual: CounterfactualReport


class ValidationReport(BaseModel):
    """Baseline and candidate side by side, and the gates' verdict on the candidate."""

    model_config = ConfigDict(frozen=True)

    rows: int
    protected: list[str]
    label: str | None
    decision: str | None
    amount: str | None
    strata: list[str]
    proxies: list[str]
    seed: int
    gates: GateSpec
    edge_case_profiles: int
    baseline: ModelValidation
    candidate: ModelValidation
    accuracy_loss: Interval | None  # baseline accuracy - candidate accuracy
    gate_report: GateReport
    headline: str
    # The same gates judged on the baseline, for a before/after view (reports written
    # before it existed read without it).
    baseline_gate_report: GateReport | None = None


def scorer_of(model: scoring.Scorer) -> Scorer:
    """Adapt the one scorer to validation's ``frame -> (decision, amount)``.

    Scores on one OpenMP thread. Gradient boosting predicts in parallel regions that
    stall whenever a thread is descheduled; on a busy 2-core machine, validation of
    2,000 rows took 10.8 s with the default threads and 0.9 s with one (and a single
    thread still scores 10,000 rows in well under a second).
    """

    def score(frame: pd.DataFrame) -> Scores:
        with threadpool_limits(limits=1, user_api="openmp"):
            scores = model.score(frame)
        rows = len(frame)
        decision = np.ones(rows, dtype=bool) if scores.decision is None else scores.decision
        amount = np.zeros(rows) if scores.amount is None else scores.amount
        return decision, amount

    return score


def _checked(model: scoring.Scorer, needs: Sequence[Outcome]) -> scoring.Scorer:
    missing = [outcome for outcome in needs if outcome not in model.artifact.models]
    if missing:
        raise ModelFileError(
            f"{model.artifact.source} has no {' or '.join(missing)} model, which the "
            f"validation needs (it holds: {', '.join(model.artifact.models)})"
        )
    return model


def scorer_from_artifact(
    store: ArtifactStore, name: str, sha256: str | None, *, needs: Sequence[Outcome] = ()
) -> Scorer:
    """A scorer for a registered artifact; :class:`ModelFileError` if it does not load or
    lacks an outcome in ``needs``."""
    return scorer_of(_checked(scoring.Scorer(load_artifact(store, name, sha256)), needs))


def scorer_from_file(
    path: str | Path, *, needs: Sequence[Outcome] = (), allow_pickle: bool = False
) -> Scorer:
    """A scorer for a model file the user names themselves (the ``fairlane audit`` commands)."""
    artifact = open_model_file(path, allow_pickle=allow_pickle)
    return scorer_of(_checked(scoring.Scorer(artifact), needs))


def gate_spec(gates: GateSpec | Gates) -> GateSpec:
    """The engine's gates for a playbook's ``gates:`` block, taken as it is (the one place
    the two meet: :class:`~fairness.gates.GateSpec` accepts the playbook's names)."""
    return gates if isinstance(gates, GateSpec) else GateSpec.model_validate(gates.model_dump())


def _measurable(spec: GateSpec, *, decision: str | None, amount: str | None) -> GateSpec:
    """The gates on outcomes the model makes: a decision-only model has no amount to gate
    (and an amount-only model no decision), so those gates are off, not "unmeasured" and
    thus inconclusive on every run; a playbook's gate defaults were written for both."""
    off: dict[str, None] = {}
    if amount is None:
        off["conditional_amount_disparity"] = None
    if decision is None:
        off.update(disparate_impact_ratio=None, equalized_odds_difference=None)
    return spec.model_copy(update=off)


def validate_candidate(
    held_out: pd.DataFrame,
    baseline: Scorer,
    candidate: Scorer,
    *,
    columns: ModelColumns,
    proxies: list[str],
    gates: GateSpec | Gates,
    seed: int,
    profiles_per_cell: int = 100,
) -> ValidationReport:
    """Measure both models on ``held_out`` and generated profiles, and gate the candidate.

    ``columns`` says which columns are protected, the strata (columns or bins), the
    label and the outcomes (as in the model manifest): an outcome it does not name is
    left out of the metrics. ``label`` is the ground-truth column for TPR/FPR and
    accuracy. ``gates`` are the engine's or a playbook's as they are.
    ``profiles_per_cell`` rows make each group x stratum cell of the balanced edge-case
    suite. The same ``seed`` gives the same report.
    """
    protected, label = list(columns.protected), columns.label
    decision, amount = columns.decision, columns.amount
    spec = _measurable(gate_spec(gates), decision=decision, amount=amount)
    if decision is None and amount is None:
        raise ValueError("name a decision, an amount, or both to validate")
    if label is not None and decision is None:
        raise ValueError(f"label {label!r} needs a decision to be compared with")
    columns.require(held_out, [*proxies, *([label] if label else [])], "held-out data")
    if held_out.empty:
        raise ValueError("held-out data has no rows")
    held_out = columns.with_strata(held_out)
    strata = columns.stratum_columns
    setting = _Setting(
        protected=protected,
        strata=strata,
        proxies=proxies,
        decision=decision,
        amount=amount,
        gates=spec,
        truth=None if label is None else _labels(held_out[label], label),
        suite=balanced_profiles(
            held_out,
            protected=protected,
            strata=strata,
            proxies=proxies,
            per_cell=profiles_per_cell,
            seed=seed,
        ),
        pairs=counterfactual_pairs(
            held_out, protected=protected, strata=strata, proxies=proxies, seed=seed
        ),
    )
    streams = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(5)]
    baseline_scores = _score(baseline, held_out, "baseline")
    candidate_scores = _score(candidate, held_out, "candidate")
    baseline_result = setting.validate(
        held_out, baseline, baseline_scores, "baseline", streams[0:2]
    )
    candidate_result = setting.validate(
        held_out, candidate, candidate_scores, "candidate", streams[2:4]
    )
    loss = None
    if setting.truth is not None:
        loss = _accuracy_loss(
            baseline_scores[0],
            candidate_scores[0],
            setting.truth,
            alpha=candidate_result.held_out.corrected_alpha,
            samples=spec.bootstrap_samples,
            rng=streams[4],
        )
    gate_report = evaluate_gates(candidate_result.held_out, spec, accuracy_loss=loss)
    return ValidationReport(
        rows=len(held_out),
        protected=protected,
        label=label,
        decision=decision,
        amount=amount,
        strata=list(columns.strata),
        proxies=proxies,
        seed=seed,
        gates=spec,
        edge_case_profiles=len(setting.suite),
        baseline=baseline_result,
        candidate=candidate_result,
        accuracy_loss=loss,
        gate_report=gate_report,
        baseline_gate_report=evaluate_gates(baseline_result.held_out, spec, accuracy_loss=None),
        headline=_headline(gate_report, baseline_result, candidate_result),
    )


@dataclass(frozen=True)
class _Setting:
    """What both models are measured against, built once."""

    protected: list[str]
    strata: list[str]
    proxies: list[str]
    decision: str | None
    amount: str | None
    gates: GateSpec
    truth: npt.NDArray[np.bool_] | None
    suite: pd.DataFrame
    pairs: CounterfactualPairs

    def validate(
        self,
        held_out: pd.DataFrame,
        scorer: Scorer,
        scores: Scores,
        name: str,
        rngs: Sequence[np.random.Generator],
    ) -> ModelValidation:
        """Held-out metrics (in the gated family, with the accuracy loss), suite, twins."""
        report = self.fairness(held_out, scores, self.truth, int(self.truth is not None), rngs[0])
        suite_report = self.fairness(self.suite, _score(scorer, self.suite, name), None, 0, rngs[1])
        accuracy = None
        if self.truth is not None:
            correct = int((scores[0] == self.truth).sum())
            accuracy = wilson_interval(correct, len(self.truth), alpha=report.corrected_alpha)
        flips = counterfactual_flip_rate(
            self.pairs,
            _score(scorer, self.pairs.original, name),
            _score(scorer, self.pairs.twin, name),
            protected=self.protected,
            proxies=self.proxies,
            alpha=self.gates.alpha,
        )
        return ModelValidation(
            held_out=report, edge_cases=suite_report, accuracy=accuracy, counterfactual=flips
        )

    def fairness(
        self,
        frame: pd.DataFrame,
        scores: Scores,
        truth: npt.NDArray[np.bool_] | None,
        extra_comparisons: int,
        rng: np.random.Generator,
    ) -> FairnessReport:
        decided, amounts = scores
        return measure_fairness(
            {column: frame[column].to_numpy() for column in self.protected},
            decided=None if self.decision is None else decided,
            labels=truth,
            amounts=None if self.amount is None else amounts,
            strata=stratum_labels(frame, self.strata) if self.strata else None,
            min_group_size=self.gates.min_group_size,
            alpha=self.gates.alpha,
            bootstrap_samples=self.gates.bootstrap_samples,
            extra_comparisons=extra_comparisons,
            rng=rng,
        )


def _accuracy_loss(
    baseline: npt.NDArray[np.bool_],
    candidate: npt.NDArray[np.bool_],
    truth: npt.NDArray[np.bool_],
    *,
    alpha: float,
    samples: int,
    rng: np.random.Generator,
) -> Interval:
    """Baseline accuracy minus candidate accuracy, paired on the same rows.

    Bootstrapped over the whole set (one cell): accuracy is a population figure, and
    splitting it by group would only let the smallest group widen the interval.
    """
    correct = np.column_stack([baseline == truth, candidate == truth]).astype(np.float64)

    def loss(batch: FloatArray) -> FloatArray:
        return np.asarray(batch[:, :, 0].mean(axis=1) - batch[:, :, 1].mean(axis=1))

    interval = stratified_bootstrap(
        loss, correct, np.zeros(len(truth)), samples=samples, alpha=alpha, rng=rng
    )
    return interval.clipped(-1.0, 1.0)


def _score(scorer: Scorer, frame: pd.DataFrame, name: str) -> Scores:
    decided, amounts = scorer(frame)
    approved_array = np.asarray(decided)
    amount_array = np.asarray(amounts, dtype=np.float64)
    if approved_array.shape != (len(frame),) or amount_array.shape != (len(frame),):
        raise ValueError(
            f"the {name} scorer must return one decision and one amount per row ({len(frame)}), "
            f"got shapes {approved_array.shape} and {amount_array.shape}"
        )
    if not np.isin(approved_array, (0, 1)).all():
        raise ValueError(f"the {name} scorer's decisions must be booleans or 0/1")
    return approved_array.astype(bool), amount_array


def _labels(column: pd.Series, name: str) -> npt.NDArray[np.bool_]:
    values = column.to_numpy()
    if column.isna().any() or not np.isin(values, (0, 1)).all():
        raise ValueError(f"label column {name!r} must hold only booleans or 0/1, without gaps")
    return np.asarray(values, dtype=bool)


def _headline(gates: GateReport, baseline: ModelValidation, candidate: ModelValidation) -> str:
    """One line for a dashboard: the verdict, the deciding reason, what the twins showed."""
    judged = len(gates.results)
    passed = sum(result.verdict is Verdict.PASS for result in gates.results)
    deciding = next(
        (result for result in gates.results if result.verdict is gates.verdict),
        None,
    )
    verdict = {
        Verdict.PASS: "passes",
        Verdict.FAIL: "fails",
        Verdict.INCONCLUSIVE: "is inconclusive",
    }[gates.verdict]
    parts = [f"Candidate {verdict}: {passed}/{judged} gates pass"]
    if deciding is not None and gates.verdict is not Verdict.PASS:
        parts.append(deciding.reason)
    before, after = baseline.counterfactual, candidate.counterfactual
    if (
        before.mean_relative_amount_change is not None
        and after.mean_relative_amount_change is not None
    ):
        parts.append(
            f"counterfactual twins: amounts move {before.mean_relative_amount_change:.1%} -> "
            f"{after.mean_relative_amount_change:.1%}, decisions flip "
            f"{before.flip_rate.estimate:.1%} -> {after.flip_rate.estimate:.1%}"
        )
    return "; ".join(parts)

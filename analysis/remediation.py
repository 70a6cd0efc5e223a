"""Candidate models that close the gap, and what each one costs (step I of the runbook).

Each strategy of the playbook trains a candidate from the parent model's own recipe (its
preprocessing and estimators, cloned), measures it on the validation data beside the
parent (accuracy against the label; the disparate-impact ratio of the decisions; the
amount disparity inside strata of comparable applicants), and the best candidate that
keeps accuracy within the bound is kept (playbooks list strategies simplest first, and
among statistically equal candidates the first wins), saved in the router's artifact
format with its lineage. Accuracy is measured against historical labels, which carry the
very bias being removed: some loss is the price of not reproducing it, hence a bound
rather than a goal.

Strategies:

- ``drop_proxies``: retrain without the confirmed (or also the suspected) proxies.
- ``transform_proxies``: replace a categorical proxy by *group-balanced regions*: its
  categories are merged into a few regions whose protected-group mix is as close as possible
  to the population's, so the transformed feature says next to nothing about the group
  (its Cramér's V with the group is recorded before and after) while it keeps coarse
  location. Numeric proxies have no such coarsening and are dropped.
- ``reweigh``: Kamiran-Calders weights (:mod:`fairness.reweighing`) as ``sample_weight``;
  the amount model is reweighed over (group, amount quantile band).
- ``constrained``: fairlearn's ExponentiatedGradient under equalized odds or demographic
  parity for the decision model. Its randomized mixture is made deterministic (a weighted
  majority vote of the mixed classifiers, plain scikit-learn objects) because a credit
  decision must be reproducible; the vote is what is evaluated and served.
- ``threshold``: fairlearn's ThresholdOptimizer. It needs the protected attribute at
  decision time, which the router does not receive, so it is evaluated for the record
  and never deployed.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer
from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from scipy.stats.contingency import association
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder
from sklearn.utils.validation import has_fit_parameter
from threadpoolctl import threadpool_limits

from analysis.data import require_columns
from analysis.models import LoadedArtifact, open_model_file
from demo.credit_model import load_model, save_model
from fairness.outcomes import (
    combine_strata,
    conditional_disparity,
    disparate_impact_ratio,
    selection_rates,
)
from fairness.reweighing import kamiran_calders_weights
from store.artifacts import ArtifactStore

Progress = Callable[[str], object]


# --- strategies: playbook data ----------------------------------------------------------------


class _Strategy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DropProxies(_Strategy):
    """Retrain without the proxies ("suspected" drops the suspected ones too)."""

    kind: Literal["drop_proxies"] = "drop_proxies"
    proxies: Literal["confirmed", "suspected"] = "confirmed"


class TransformProxies(_Strategy):
    """Replace categorical proxies by ``regions`` group-balanced regions; drop numeric ones."""

    kind: Literal["transform_proxies"] = "transform_proxies"
    proxies: Literal["confirmed", "suspected"] = "confirmed"
    regions: int = Field(default=4, ge=2)


class Reweigh(_Strategy):
    """Kamiran-Calders reweighing, after dropping ``proxies`` (none by default)."""

    kind: Literal["reweigh"] = "reweigh"
    proxies: Literal["none", "confirmed", "suspected"] = "none"
    amount_bins: int = Field(default=4, ge=1)


class Constrained(_Strategy):
    """ExponentiatedGradient under a fairness constraint, after dropping ``proxies``."""

    kind: Literal["constrained"] = "constrained"
    constraint: Literal["equalized_odds", "demographic_parity"] = "equalized_odds"
    difference_bound: float = Field(default=0.02, gt=0.0, le=1.0)
    eps: float = Field(default=0.01, gt=0.0)
    max_iter: int = Field(default=15, ge=1)
    proxies: Literal["none", "confirmed", "suspected"] = "none"


class Threshold(_Strategy):
    """Group-specific thresholds on the parent's scores (needs the group at serving time)."""

    kind: Literal["threshold"] = "threshold"
    constraint: Literal["equalized_odds", "demographic_parity"] = "equalized_odds"
    objective: Literal["accuracy_score", "balanced_accuracy_score"] = "accuracy_score"


StrategySpec = Annotated[
    DropProxies | TransformProxies | Reweigh | Constrained | Threshold,
    Field(discriminator="kind"),
]


# --- the record ---------------------------------------------------------------------------------


class TradeOffPoint(BaseModel):
    """One model's accuracy and fairness on the validation data."""

    model_config = ConfigDict(frozen=True)

    name: str  # "parent", or the strategy with its non-default settings
    strategy: str
    parameters: dict[str, JsonValue]
    deployable: bool
    not_deployable_reason: str | None
    accuracy: float  # decision vs label
    accuracy_loss: float  # parent's accuracy minus this one's
    selection_rates: dict[str, dict[str, float]]  # attribute -> group -> rate
    disparate_impact_ratio: float  # the worst attribute's
    amount_disparity: float | None  # the worst attribute's conditional gap, approved rows
    amount_disparity_by_attribute: dict[str, float | None]
    amount_error: float | None  # median |predicted / historical - 1| where an amount was given
    fairness_score: float | None  # worst of gap / target and (1 - ratio) / (1 - target)
    meets_fairness_targets: bool
    within_accuracy_bound: bool
    seconds: float
    notes: list[str]


class Lineage(BaseModel):
    """Where a candidate came from: enough to retrain it and to audit why it exists."""

    model_config = ConfigDict(frozen=True)

    parent_version: str | None
    parent_source: str
    parent_digest: str | None
    strategy: str
    parameters: dict[str, JsonValue]
    training_data_digest: str
    validation_data_digest: str
    code_version: str
    created_at: str


class RemediationResult(BaseModel):
    """What was tried, what each cost, and the candidate chosen (if any could be)."""

    parent_version: str | None
    points: list[TradeOffPoint]  # the parent first, then the strategies in playbook order
    not_applicable: dict[str, str]  # strategy -> why it could not apply to this model
    chosen: TradeOffPoint | None
    candidate_version: str | None
    lineage: Lineage | None
    artifact: str | None  # its name in the artifacts directory
    artifact_sha256: str | None
    max_accuracy_loss: float
    min_disparate_impact: float
    max_amount_disparity: float
    selection: str
    headline: str
    # The candidate artifact itself (scikit-learn objects): for the caller, never serialized.
    candidate_artifact: dict[str, Any] | None = Field(default=None, exclude=True, repr=False)


class StrategyNotApplicable(ValueError):
    """A strategy that cannot be applied to this model or data (the others still run)."""


# --- the engine ---------------------------------------------------------------------------------


def remediate(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    parent: LoadedArtifact | str | Path,
    *,
    protected: list[str],
    label: str,
    decision: str,
    amount: str,
    strata: list[str],
    confirmed_proxies: list[str],
    suspected_proxies: list[str],
    strategies: list[StrategySpec],
    seed: int = 0,
    max_accuracy_loss: float = 0.02,
    min_disparate_impact: float = 0.8,
    max_amount_disparity: float = 0.015,
    min_stratum_rows: int = 30,
    version: str | None = None,
    store: ArtifactStore | None = None,
    output: tuple[str, ...] | None = None,
    threads: int | None = 1,
    progress: Progress | None = None,
) -> RemediationResult:
    """Try every strategy, record the trade-offs, keep the best candidate and save it to ``output``.

    ``output`` is the candidate's name in ``store`` as slugs (model id, file name): it is
    written there as skops, so nothing outside the artifacts directory is ever written.

    ``label`` is the ground-truth decision the decision model learns and is scored against;
    the amount model learns ``amount`` on the rows whose ``decision`` column is positive,
    as the parent's did. Among deployable candidates within ``max_accuracy_loss`` (absolute:
    0.02 is two points) of the parent, one meeting both fairness targets
    (``min_disparate_impact``, ``max_amount_disparity``) is chosen: the first in
    ``strategies`` order whose accuracy is statistically as good as the best such one (so
    list strategies simplest first). Failing that, the fairest within the bound; failing
    that, the fairest at all; ``selection`` says which rule applied. ``threads`` caps
    OpenMP threads while training (see :func:`analysis.attribution.attribution_audit`).
    """
    if not 0.0 < min_disparate_impact < 1.0 or max_amount_disparity <= 0 or max_accuracy_loss < 0:
        raise ValueError(
            "min_disparate_impact must be in (0, 1), max_amount_disparity positive and "
            "max_accuracy_loss non-negative"
        )
    if not protected or not strata:
        raise ValueError("name at least one protected attribute and one stratum column")
    parent_artifact = parent if isinstance(parent, LoadedArtifact) else open_model_file(parent)
    features = list(parent_artifact.features)
    needed = [*features, *protected, label, decision, amount]
    require_columns(list(train.columns), needed, "the training data")
    require_columns(list(validation.columns), [*needed, *strata], "the validation data")
    setting = _Setting(
        train=train,
        validation=validation,
        parent=parent_artifact,
        features=features,
        protected=protected,
        label=label,
        decision=decision,
        amount=amount,
        strata=strata,
        proxies={
            "none": [],
            "confirmed": list(dict.fromkeys(confirmed_proxies)),
            "suspected": list(dict.fromkeys([*confirmed_proxies, *suspected_proxies])),
        },
        seed=seed,
    )
    targets = _Targets(max_accuracy_loss, min_disparate_impact, max_amount_disparity)
    notify = progress or (lambda _message: None)

    with threadpool_limits(limits=threads, user_api="openmp"):
        baseline = _evaluate(
            _parent_candidate(setting), "parent", 0.0, setting, targets, None, min_stratum_rows
        )
        points, candidates, not_applicable = [baseline], {}, {}
        for name, spec in _named(strategies):
            notify(f"training candidate {name}")
            started = time.perf_counter()
            try:
                candidate = _BUILDERS[spec.kind](spec, setting)
            except StrategyNotApplicable as reason:
                not_applicable[name] = str(reason)
                continue
            seconds = time.perf_counter() - started
            points.append(
                _evaluate(candidate, name, seconds, setting, targets, baseline, min_stratum_rows)
            )
            candidates[name] = candidate

    chosen, selection = _choose(points[1:], targets, len(validation))
    result = RemediationResult(
        parent_version=parent_artifact.version,
        points=points,
        not_applicable=not_applicable,
        chosen=chosen,
        candidate_version=None,
        lineage=None,
        artifact=None,
        artifact_sha256=None,
        max_accuracy_loss=max_accuracy_loss,
        min_disparate_impact=min_disparate_impact,
        max_amount_disparity=max_amount_disparity,
        selection=selection,
        headline=_headline(baseline, chosen, selection, amount, targets),
    )
    if chosen is None:
        return result
    lineage = _lineage(setting, chosen)
    candidate_version = version or _version_name(setting, chosen, lineage)
    artifact = candidates[chosen.name].artifact(candidate_version, setting, lineage)
    saved: tuple[str, str] | tuple[None, None] = (None, None)
    if output is not None:
        if store is None:
            raise ValueError("an output name needs the artifact store to write it to")
        saved = save_model(store, artifact, *output)
        load_model(store, *saved)  # the router's own loader must accept it
    return result.model_copy(
        update={
            "candidate_version": candidate_version,
            "lineage": lineage,
            "artifact": saved[0],
            "artifact_sha256": saved[1],
            "candidate_artifact": artifact,
        }
    )


# --- what a strategy works with and produces ---------------------------------------------------


@dataclass(frozen=True)
class _Targets:
    max_accuracy_loss: float
    min_disparate_impact: float
    max_amount_disparity: float


@dataclass(frozen=True)
class _Setting:
    """The data, the parent and the proxies every strategy starts from."""

    train: pd.DataFrame
    validation: pd.DataFrame
    parent: LoadedArtifact
    features: list[str]
    protected: list[str]
    label: str
    decision: str
    amount: str
    strata: list[str]
    proxies: dict[str, list[str]]  # "none" / "confirmed" / "suspected" (confirmed + suspected)
    seed: int
    y_train: npt.NDArray[np.bool_] = field(init=False)
    amount_rows: npt.NDArray[np.bool_] = field(init=False)  # training rows that got an amount
    train_groups: npt.NDArray[np.str_] = field(init=False)  # intersection of protected columns

    def __post_init__(self) -> None:
        object.__setattr__(self, "y_train", _binary(self.train[self.label], self.label))
        object.__setattr__(self, "amount_rows", _binary(self.train[self.decision], self.decision))
        groups = combine_strata(*(self.train[column] for column in self.protected))
        object.__setattr__(self, "train_groups", np.asarray(groups))

    def in_model(self, scope: str) -> list[str]:
        """The proxies of ``scope`` that the model actually uses."""
        return [proxy for proxy in self.proxies[scope] if proxy in self.features]


@dataclass(frozen=True)
class _Candidate:
    """A trained candidate: how it decides and sets amounts, and whether it can be served."""

    strategy: str
    parameters: dict[str, Any]  # JSON values
    features: list[str]
    approve: Callable[[pd.DataFrame], npt.NDArray[np.bool_]]
    amounts: Callable[[pd.DataFrame], npt.NDArray[np.float64]]
    pipelines: tuple[Any, Any] | None  # (approval, limit) in the router's artifact format
    not_deployable_reason: str | None = None
    notes: tuple[str, ...] = ()

    def artifact(self, version: str, setting: _Setting, lineage: Lineage) -> dict[str, Any]:
        """The router's artifact dict (see demo.credit_model), lineage inside ``trained_on``."""
        assert self.pipelines is not None
        approval, limit = self.pipelines
        return {
            "approval": approval,
            "limit": limit,
            "features": list(self.features),
            "version": version,
            "trained_on": {
                "rows": len(setting.train),
                "approved_rows": int(setting.amount_rows.sum()),
                "content_digest": lineage.training_data_digest,
                "trained_at": lineage.created_at,
                "lineage": lineage.model_dump(mode="json"),
            },
        }


def _served(
    strategy: str,
    parameters: dict[str, Any],
    approval: Any,
    limit: Any,
    features: list[str],
    notes: tuple[str, ...] = (),
) -> _Candidate:
    """A candidate the router can serve: it decides and sets amounts from raw features alone."""

    def approve(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        return np.asarray(approval.predict(frame[features]), dtype=bool)

    def amounts(frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        return np.maximum(np.asarray(limit.predict(frame[features]), dtype=np.float64), 0.0)

    return _Candidate(
        strategy=strategy,
        parameters=parameters,
        features=features,
        approve=approve,
        amounts=amounts,
        pipelines=(approval, limit),
        notes=notes,
    )


def _parent_candidate(setting: _Setting) -> _Candidate:
    parent = setting.parent
    return _served(
        "parent",
        {"version": parent.version},
        parent.model("decision").estimator,
        parent.model("amount").estimator,
        setting.features,
    )


# --- rebuilding the parent's recipe --------------------------------------------------------------


@dataclass(frozen=True)
class _Recipe:
    """The parent's preprocessing and estimators, unfitted, some features dropped or replaced."""

    features: list[str]
    approval_steps: list[tuple[str, Any]]
    approval_final: tuple[str, Any]
    limit_steps: list[tuple[str, Any]]
    limit_final: tuple[str, Any]
    shared: bool  # one preprocessing object serves both models, as in the parent


def _recipe(setting: _Setting, drop: list[str], replace: dict[str, Any]) -> _Recipe:
    approval = setting.parent.model("decision").estimator
    limit = setting.parent.model("amount").estimator
    shared = _shares_preprocessing(approval, limit)
    approval_steps, approval_final = _unfitted(approval, drop, replace, setting.seed)
    limit_steps, limit_final = _unfitted(limit, drop, replace, setting.seed)
    return _Recipe(
        features=[feature for feature in setting.features if feature not in drop],
        approval_steps=approval_steps,
        approval_final=approval_final,
        limit_steps=limit_steps,
        limit_final=limit_final,
        shared=shared,
    )


def _shares_preprocessing(approval: Any, limit: Any) -> bool:
    return (
        isinstance(approval, Pipeline)
        and isinstance(limit, Pipeline)
        and len(approval) == len(limit) > 1
        and all(
            a is b for (_, a), (_, b) in zip(approval.steps[:-1], limit.steps[:-1], strict=True)
        )
    )


def _unfitted(
    estimator: Any, drop: list[str], replace: dict[str, Any], seed: int
) -> tuple[list[tuple[str, Any]], tuple[str, Any]]:
    if not isinstance(estimator, Pipeline) or len(estimator) < 2:
        if replace:
            raise StrategyNotApplicable(
                "transforming a feature needs a pipeline that starts with a column transformer"
            )
        return [], ("model", _seeded(clone(estimator), seed))
    steps: list[tuple[str, Any]] = []
    for position, (name, step) in enumerate(estimator.steps[:-1]):
        fresh = step if step is None or isinstance(step, str) else clone(step)
        steps.append((name, _without(fresh, drop, replace) if position == 0 else fresh))
    name, final = estimator.steps[-1]
    return steps, (name, _seeded(clone(final), seed))


def _without(step: Any, drop: list[str], replace: dict[str, Any]) -> Any:
    """The first preprocessing step with ``drop`` removed and ``replace`` swapped in."""
    if not drop and not replace:
        return step
    if not isinstance(step, ColumnTransformer):
        if replace:
            raise StrategyNotApplicable(
                "transforming a feature needs a pipeline that starts with a column transformer"
            )
        return step  # it is fitted afresh on the remaining columns
    removed = set(drop) | set(replace)
    transformers = []
    for name, transformer, columns in step.transformers:
        if callable(columns) and not replace:
            transformers.append((name, transformer, columns))  # selects from what is left
            continue
        if isinstance(columns, str):
            if columns not in removed:
                transformers.append((name, transformer, columns))
            continue
        names = list(columns) if not callable(columns) else []
        if callable(columns) or not all(isinstance(column, str) for column in names):
            raise StrategyNotApplicable(
                f"column transformer part {name!r} selects columns by position or by a "
                "function: a feature cannot be taken out of it"
            )
        kept = [column for column in names if column not in removed]
        if kept:
            transformers.append((name, transformer, kept))
    for column, encoder in replace.items():
        transformers.append((f"{column}_regions", encoder, [column]))
    return step.set_params(transformers=transformers)


def _seeded(estimator: Any, seed: int) -> Any:
    """Fix every unset random_state, so a retried activity trains the same candidate."""
    unset = {
        key: seed
        for key, value in estimator.get_params(deep=True).items()
        if key.rsplit("__", 1)[-1] == "random_state" and value is None
    }
    return estimator.set_params(**unset) if unset else estimator


def _train(
    setting: _Setting,
    recipe: _Recipe,
    *,
    fit_decision: Callable[[Any, Any, npt.NDArray[np.bool_]], Any] | None = None,
    decision_weights: npt.NDArray[np.float64] | None = None,
    amount_weights: npt.NDArray[np.float64] | None = None,
) -> tuple[Any, Any]:
    """Fit the recipe: preprocessing once (shared if the parent shared it), then each model."""
    frame = setting.train[recipe.features]
    rows = setting.amount_rows
    approval_pre, approval_x = _fit_steps(recipe.approval_steps, frame)
    if recipe.shared:
        limit_pre, limit_x = approval_pre, approval_x[rows]
    else:
        limit_pre, limit_x = _fit_steps(recipe.limit_steps, frame[rows])

    approval_name, approval_final = recipe.approval_final
    if fit_decision is not None:
        approval_final = fit_decision(approval_final, approval_x, setting.y_train)
    else:
        approval_final.fit(approval_x, setting.y_train, **_weights(decision_weights))
    limit_name, limit_final = recipe.limit_final
    limit_final.fit(limit_x, setting.train.loc[rows, setting.amount], **_weights(amount_weights))
    return (
        _assemble(approval_pre, approval_name, approval_final),
        _assemble(limit_pre, limit_name, limit_final),
    )


def _fit_steps(steps: list[tuple[str, Any]], frame: pd.DataFrame) -> tuple[Pipeline | None, Any]:
    if not steps:
        return None, frame
    preprocess = Pipeline(steps)
    return preprocess, preprocess.fit_transform(frame)


def _assemble(preprocess: Pipeline | None, name: str, final: Any) -> Any:
    return final if preprocess is None else Pipeline([*preprocess.steps, (name, final)])


def _weights(weights: npt.NDArray[np.float64] | None) -> dict[str, Any]:
    return {} if weights is None else {"sample_weight": weights}


def _accepts_weights(estimator: Any) -> bool:
    if isinstance(estimator, TransformedTargetRegressor):  # passes them to its regressor
        return _accepts_weights(estimator.regressor)
    return bool(has_fit_parameter(estimator, "sample_weight"))


# --- the strategies -----------------------------------------------------------------------------


def _drop_proxies(spec: DropProxies, setting: _Setting) -> _Candidate:
    dropped = setting.in_model(spec.proxies)
    if not dropped:
        raise StrategyNotApplicable(f"no {spec.proxies} proxy is a feature of the model")
    recipe = _recipe(setting, drop=dropped, replace={})
    approval, limit = _train(setting, recipe)
    return _served(spec.kind, {"dropped": dropped}, approval, limit, recipe.features)


def _transform_proxies(spec: TransformProxies, setting: _Setting) -> _Candidate:
    proxies = setting.in_model(spec.proxies)
    if not proxies:
        raise StrategyNotApplicable(f"no {spec.proxies} proxy is a feature of the model")
    numeric = [p for p in proxies if pd.api.types.is_numeric_dtype(setting.train[p].dtype)]
    replace: dict[str, Any] = {}
    transformed: dict[str, Any] = {}
    for proxy in (p for p in proxies if p not in numeric):
        values = setting.train[proxy]
        assignment = balanced_regions(values, setting.train_groups, spec.regions)
        replace[proxy] = region_encoder(assignment)
        transformed[proxy] = {
            "regions": {str(category): region for category, region in assignment.items()},
            "cramers_v_before": _cramers_v(values, setting.train_groups),
            "cramers_v_after": _cramers_v(values.map(assignment), setting.train_groups),
        }
    recipe = _recipe(setting, drop=numeric, replace=replace)
    approval, limit = _train(setting, recipe)
    notes = tuple(f"{p} is numeric: no group-balanced regions for it, dropped" for p in numeric)
    parameters: dict[str, Any] = {"transformed": transformed, "dropped": numeric}
    return _served(spec.kind, parameters, approval, limit, recipe.features, notes)


def _reweigh(spec: Reweigh, setting: _Setting) -> _Candidate:
    dropped = setting.in_model(spec.proxies)
    recipe = _recipe(setting, drop=dropped, replace={})
    for _, final in (recipe.approval_final, recipe.limit_final):
        if not _accepts_weights(final):
            raise StrategyNotApplicable(f"{type(final).__name__} does not take sample weights")
    rows = setting.amount_rows
    decision_weights = kamiran_calders_weights(setting.train_groups, setting.y_train)
    bands = pd.qcut(
        setting.train.loc[rows, setting.amount], q=spec.amount_bins, labels=False, duplicates="drop"
    )
    amount_weights = kamiran_calders_weights(setting.train_groups[rows], bands.to_numpy())
    approval, limit = _train(
        setting, recipe, decision_weights=decision_weights, amount_weights=amount_weights
    )
    parameters: dict[str, Any] = {
        "dropped": dropped,
        "amount_bins": int(bands.nunique()),
        "decision_weights": [float(decision_weights.min()), float(decision_weights.max())],
        "amount_weights": [float(amount_weights.min()), float(amount_weights.max())],
    }
    return _served(spec.kind, parameters, approval, limit, recipe.features)


def _constrained(spec: Constrained, setting: _Setting) -> _Candidate:
    dropped = setting.in_model(spec.proxies)
    recipe = _recipe(setting, drop=dropped, replace={})
    if not _accepts_weights(recipe.approval_final[1]):
        raise StrategyNotApplicable(
            f"{type(recipe.approval_final[1]).__name__} does not take the sample weights "
            "fairlearn's reductions train it with"
        )
    bound = spec.difference_bound
    constraint = (
        EqualizedOdds(difference_bound=bound)
        if spec.constraint == "equalized_odds"
        else DemographicParity(difference_bound=bound)
    )
    mixed: list[int] = []

    def fit_decision(estimator: Any, x: Any, y: npt.NDArray[np.bool_]) -> Any:
        mixture = ExponentiatedGradient(estimator, constraint, eps=spec.eps, max_iter=spec.max_iter)
        mixture.fit(x, y, sensitive_features=setting.train[setting.protected])
        vote = _majority_vote(mixture, x, y)
        mixed.append(len(vote.estimators))
        return vote

    approval, limit = _train(setting, recipe, fit_decision=fit_decision)
    parameters: dict[str, Any] = {
        **spec.model_dump(exclude={"kind", "proxies"}),
        "dropped": dropped,
        "mixed_classifiers": mixed[0],
    }
    notes = (
        f"ExponentiatedGradient's randomized mixture (classifiers mixed: {mixed[0]}) is served "
        "as their weighted majority vote, which is deterministic",
    )
    return _served(spec.kind, parameters, approval, limit, recipe.features, notes)


def _threshold(spec: Threshold, setting: _Setting) -> _Candidate:
    features, protected = setting.features, setting.protected
    parent = setting.parent
    optimizer = ThresholdOptimizer(
        estimator=parent.model("decision").estimator,
        constraints=spec.constraint,
        objective=spec.objective,
        prefit=True,
        predict_method="auto",
    )
    optimizer.fit(
        setting.train[features], setting.y_train, sensitive_features=setting.train[protected]
    )
    limit = parent.model("amount").estimator

    def approve(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        decided = optimizer.predict(
            frame[features], sensitive_features=frame[protected], random_state=setting.seed
        )
        return np.asarray(decided, dtype=bool)

    def amounts(frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        return np.maximum(np.asarray(limit.predict(frame[features]), dtype=np.float64), 0.0)

    return _Candidate(
        strategy=spec.kind,
        parameters=spec.model_dump(exclude={"kind"}),
        features=features,
        approve=approve,
        amounts=amounts,
        pipelines=None,
        not_deployable_reason=(
            f"needs the protected attribute ({', '.join(protected)}) at decision time, "
            "which the router does not receive; its thresholds are also randomized"
        ),
        notes=("the amount model is the parent's",),
    )


_BUILDERS: dict[str, Callable[[Any, _Setting], _Candidate]] = {
    "drop_proxies": _drop_proxies,
    "transform_proxies": _transform_proxies,
    "reweigh": _reweigh,
    "constrained": _constrained,
    "threshold": _threshold,
}


def _majority_vote(mixture: ExponentiatedGradient, x: Any, y: npt.NDArray[np.bool_]) -> Any:
    """ExponentiatedGradient's randomized classifier made deterministic.

    The mixture answers yes with probability sum_i w_i h_i(x); the vote answers yes when
    that probability is above one half. Frozen members are not refitted, and the result is
    plain scikit-learn (VotingClassifier), so the router loads it without fairlearn.
    """
    weights = mixture.weights_[mixture.weights_ > 0]
    members = [(f"h{i}", FrozenEstimator(mixture.predictors_[i])) for i in weights.index]
    return VotingClassifier(members, voting="hard", weights=weights.to_list()).fit(x, y)


def balanced_regions(categories: pd.Series, groups: npt.ArrayLike, regions: int) -> dict[Any, int]:
    """Merge categories into at most ``regions`` regions whose group mix matches the population.

    Each region aims at an equal share of every group's rows; categories, largest first,
    go to the region whose counts they bring closest to that target (L1 distance). A region
    of the population's own mix says nothing about group membership, so the model can no
    longer read the group off the region, whatever else the region says.
    """
    table = pd.crosstab(categories.to_numpy(), np.asarray(groups))
    target = table.sum(axis=0).to_numpy(dtype=np.float64) / regions
    filled = np.zeros((regions, table.shape[1]))
    assignment: dict[Any, int] = {}
    for category in table.sum(axis=1).sort_values(ascending=False, kind="stable").index:
        counts = table.loc[category].to_numpy(dtype=np.float64)
        cost = np.abs(filled + counts - target).sum(axis=1) - np.abs(filled - target).sum(axis=1)
        region = int(np.argmin(cost))
        filled[region] += counts
        assignment[category] = region
    return assignment


def region_encoder(assignment: dict[Any, int]) -> Pipeline:
    """Category -> region -> one-hot, in plain scikit-learn and numpy (the router needs no more).

    The categories are coded in region order, so each region is a run of codes and
    ``np.digitize`` on the runs' starts maps a code to its region; an unseen category
    (code -1) falls before every run and one-hot encodes to all zeros.
    """
    order = sorted(assignment, key=lambda category: (assignment[category], str(category)))
    codes = pd.Series(range(len(order)), index=[assignment[c] for c in order])
    starts = codes.groupby(level=0).min().to_numpy()
    return Pipeline(
        [
            (
                "code",
                OrdinalEncoder(
                    categories=[np.asarray(order, dtype=object)],
                    handle_unknown="use_encoded_value",
                    unknown_value=-1,
                ),
            ),
            (
                "region",
                FunctionTransformer(
                    np.digitize, kw_args={"bins": starts}, feature_names_out="one-to-one"
                ),
            ),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )


def _cramers_v(values: pd.Series, groups: npt.ArrayLike) -> float:
    table = pd.crosstab(values.to_numpy(), np.asarray(groups)).to_numpy()
    return 0.0 if min(table.shape) < 2 else float(association(table, method="cramer"))


# --- measuring and choosing ---------------------------------------------------------------------


def _binary(values: pd.Series, name: str) -> npt.NDArray[np.bool_]:
    array = values.to_numpy()
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"column {name!r} must hold only booleans or 0/1")
    return np.asarray(array, dtype=bool)


def _evaluate(
    candidate: _Candidate,
    name: str,
    seconds: float,
    setting: _Setting,
    targets: _Targets,
    baseline: TradeOffPoint | None,
    min_stratum_rows: int,
) -> TradeOffPoint:
    frame = setting.validation
    approved = candidate.approve(frame)
    accuracy = float(np.mean(approved == _binary(frame[setting.label], setting.label)))
    strata = np.asarray(combine_strata(*(frame[column] for column in setting.strata)))
    amounts = candidate.amounts(frame[approved]) if approved.any() else np.zeros(0)
    rates: dict[str, dict[str, float]] = {}
    ratios: dict[str, float] = {}
    gaps: dict[str, float | None] = {}
    for attribute in setting.protected:
        groups = frame[attribute].to_numpy()
        rates[attribute] = selection_rates(approved, groups)
        ratios[attribute] = disparate_impact_ratio(approved, groups)
        gaps[attribute] = (
            conditional_disparity(
                amounts, groups[approved], strata[approved], min_count=min_stratum_rows
            ).relative_gap
            if approved.any()
            else None
        )
    ratio = min(ratios.values())
    known_gaps = [gap for gap in gaps.values() if gap is not None]
    amount_gap = max(known_gaps) if known_gaps else None
    score = (
        None
        if amount_gap is None
        else max(
            amount_gap / targets.max_amount_disparity,
            (1.0 - ratio) / (1.0 - targets.min_disparate_impact),
        )
    )
    loss = 0.0 if baseline is None else baseline.accuracy - accuracy
    return TradeOffPoint(
        name=name,
        strategy=candidate.strategy,
        parameters=candidate.parameters,
        deployable=candidate.pipelines is not None,
        not_deployable_reason=candidate.not_deployable_reason,
        accuracy=accuracy,
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


def _amount_error(candidate: _Candidate, setting: _Setting) -> float | None:
    """Median relative error against the historical amounts (which carry the bias)."""
    frame = setting.validation
    given = _binary(frame[setting.decision], setting.decision) & (frame[setting.amount] > 0)
    if not given.any():
        return None
    actual = frame.loc[given, setting.amount].to_numpy(dtype=np.float64)
    return float(np.median(np.abs(candidate.amounts(frame[given]) / actual - 1.0)))


def _choose(
    points: list[TradeOffPoint], targets: _Targets, rows: int
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
        return None, "no strategy produced a candidate the router can serve"
    within = [point for point in deployable if point.within_accuracy_bound]
    fair = [point for point in within if point.meets_fairness_targets]
    if fair:
        best = max(point.accuracy for point in fair)
        noise = float(np.sqrt(best * (1.0 - best) / rows))
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


def _headline(
    baseline: TradeOffPoint,
    chosen: TradeOffPoint | None,
    selection: str,
    amount: str,
    targets: _Targets,
) -> str:
    if chosen is None:
        return f"no candidate: {selection}"

    def gap(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    text = (
        f"{chosen.name}: conditional {amount} disparity {gap(baseline.amount_disparity)} -> "
        f"{gap(chosen.amount_disparity)}, disparate-impact ratio "
        f"{baseline.disparate_impact_ratio:.2f} -> {chosen.disparate_impact_ratio:.2f}, "
        f"accuracy {baseline.accuracy:.1%} -> {chosen.accuracy:.1%} "
        f"(bound: {targets.max_accuracy_loss:.1%} loss)"
    )
    if not (chosen.meets_fairness_targets and chosen.within_accuracy_bound):
        text += f"; {selection}"
    return text


# --- lineage ------------------------------------------------------------------------------------


def _named(strategies: list[StrategySpec]) -> list[tuple[str, StrategySpec]]:
    """Readable, unique names: the kind and the settings that differ from the defaults."""
    named: list[tuple[str, StrategySpec]] = []
    seen: dict[str, int] = {}
    for spec in strategies:
        settings = spec.model_dump(exclude_defaults=True, exclude={"kind"})
        name = spec.kind + (
            "(" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")" if settings else ""
        )
        seen[name] = seen.get(name, 0) + 1
        named.append((name if seen[name] == 1 else f"{name}#{seen[name]}", spec))
    return named


def _lineage(setting: _Setting, chosen: TradeOffPoint) -> Lineage:
    parent = setting.parent
    return Lineage(
        parent_version=parent.version,
        parent_source=parent.source,
        parent_digest=parent.digest,
        strategy=chosen.name,
        parameters=chosen.parameters,
        training_data_digest=data_digest(setting.train),
        validation_data_digest=data_digest(setting.validation),
        code_version=code_version(),
        created_at=datetime.now(UTC).isoformat(),
    )


def _version_name(setting: _Setting, chosen: TradeOffPoint, lineage: Lineage) -> str:
    """Parent, strategy and a digest of the lineage: a retried activity names the same version."""
    digest = hashlib.sha256(lineage.model_dump_json(exclude={"created_at"}).encode()).hexdigest()
    return f"{setting.parent.version or 'model'}-{chosen.strategy}-{digest[:8]}"


def data_digest(frame: pd.DataFrame) -> str:
    """sha256 over the column names and every row's content hash, in order."""
    hasher = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    hasher.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return hasher.hexdigest()


def code_version() -> str:
    """``git describe`` of the code that trained a candidate, else the installed package version."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return f"git {described}"
    except (OSError, subprocess.SubprocessError):
        try:
            return f"fairlane {metadata.version('fairlane')}"
        except metadata.PackageNotFoundError:
            return "unknown"

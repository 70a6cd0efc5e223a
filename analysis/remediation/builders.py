"""How each strategy trains its candidate from the parent's recipe.

- ``drop_proxies``: retrain without the confirmed (or also the suspected) proxies.
- ``transform_proxies``: replace each categorical proxy (or the columns the strategy
  names) by group-balanced regions (:mod:`analysis.remediation.regions`); numeric
  ones have no such coarsening and are dropped.
- ``reweigh``: Kamiran-Calders weights (:mod:`fairness.reweighing`) as ``sample_weight``:
  over (group, label) for the decision model, over (group, amount quantile band) for
  the amount model.
- ``constrained``: fairlearn's ExponentiatedGradient under equalized odds or demographic
  parity for the decision model. Its randomized mixture is made deterministic (a weighted
  majority vote of the mixed classifiers, plain scikit-learn objects) because a decision
  must be reproducible; the vote is what is evaluated and served.
- ``threshold``: fairlearn's ThresholdOptimizer. It needs the protected attribute at
  decision time, which a gateway does not receive, so it is evaluated for the record
  and never deployed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer
from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator

from analysis.remediation.recipes import accepts_weights, recipe, train
from analysis.remediation.regions import balanced_regions, cramers_v, region_encoder
from analysis.remediation.setting import Candidate, Setting, StrategyNotApplicable, served
from analysis.remediation.strategies import (
    Constrained,
    DropProxies,
    Reweigh,
    StrategySpec,
    Threshold,
    TransformProxies,
)
from fairness.reweighing import kamiran_calders_weights


def build(spec: StrategySpec, setting: Setting) -> Candidate:
    """Train the candidate of ``spec``; :class:`StrategyNotApplicable` says why not."""
    builder: Callable[[Any, Setting], Candidate] = _BUILDERS[spec.kind]
    return builder(spec, setting)


def _drop_proxies(spec: DropProxies, setting: Setting) -> Candidate:
    dropped = setting.in_model(spec.proxies)
    if not dropped:
        raise StrategyNotApplicable(f"no {spec.proxies} proxy is a feature of the model")
    plan = recipe(setting, drop=dropped, replace={})
    return served(spec.kind, {"dropped": dropped}, train(setting, plan), plan.features)


def _transform_proxies(spec: TransformProxies, setting: Setting) -> Candidate:
    if spec.columns:
        unknown = [c for c in spec.columns if c not in setting.features]
        if unknown:
            raise StrategyNotApplicable(f"{unknown} are not features of the model")
        proxies = list(spec.columns)
    else:
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
            "cramers_v_before": cramers_v(values, setting.train_groups),
            "cramers_v_after": cramers_v(values.map(assignment), setting.train_groups),
        }
    plan = recipe(setting, drop=numeric, replace=replace)
    notes = tuple(f"{p} is numeric: no group-balanced regions for it, dropped" for p in numeric)
    parameters: dict[str, Any] = {"transformed": transformed, "dropped": numeric}
    return served(spec.kind, parameters, train(setting, plan), plan.features, notes)


def _reweigh(spec: Reweigh, setting: Setting) -> Candidate:
    dropped = setting.in_model(spec.proxies)
    plan = recipe(setting, drop=dropped, replace={})
    for outcome in plan.finals:
        if not accepts_weights(plan.final(outcome)):
            name = type(plan.final(outcome)).__name__
            raise StrategyNotApplicable(f"{name} does not take sample weights")
    parameters: dict[str, Any] = {"dropped": dropped}
    decision_weights = amount_weights = None
    if setting.y_train is not None:
        decision_weights = kamiran_calders_weights(setting.train_groups, setting.y_train)
        parameters["decision_weights"] = _range(decision_weights)
    if "amount" in plan.finals:
        bands = pd.qcut(
            setting.amount_target(), q=spec.amount_bins, labels=False, duplicates="drop"
        )
        groups = setting.train_groups[setting.amount_rows]
        amount_weights = kamiran_calders_weights(groups, bands.to_numpy())
        parameters["amount_bins"] = int(bands.nunique())
        parameters["amount_weights"] = _range(amount_weights)
    models = train(setting, plan, decision_weights=decision_weights, amount_weights=amount_weights)
    return served(spec.kind, parameters, models, plan.features)


def _range(weights: npt.NDArray[np.float64]) -> list[float]:
    return [float(weights.min()), float(weights.max())]


def _constrained(spec: Constrained, setting: Setting) -> Candidate:
    if setting.y_train is None:
        raise StrategyNotApplicable("a fairness constraint applies to a decision: none is made")
    dropped = setting.in_model(spec.proxies)
    plan = recipe(setting, drop=dropped, replace={})
    if not accepts_weights(plan.final("decision")):
        raise StrategyNotApplicable(
            f"{type(plan.final('decision')).__name__} does not take the sample weights "
            "fairlearn's reductions train it with"
        )
    bound = spec.difference_bound
    constraint = (
        EqualizedOdds(difference_bound=bound)
        if spec.constraint == "equalized_odds"
        else DemographicParity(difference_bound=bound)
    )
    mixed: list[int] = []
    sensitive = setting.train[list(setting.columns.protected)]

    def fit_decision(estimator: Any, x: Any, y: npt.NDArray[np.bool_]) -> Any:
        mixture = ExponentiatedGradient(estimator, constraint, eps=spec.eps, max_iter=spec.max_iter)
        mixture.fit(x, y, sensitive_features=sensitive)
        vote = _majority_vote(mixture, x, y)
        mixed.append(len(vote.estimators))
        return vote

    models = train(setting, plan, fit_decision=fit_decision)
    parameters: dict[str, Any] = {
        **spec.model_dump(exclude={"kind", "proxies"}),
        "dropped": dropped,
        "mixed_classifiers": mixed[0],
    }
    notes = (
        f"ExponentiatedGradient's randomized mixture (classifiers mixed: {mixed[0]}) is served "
        "as their weighted majority vote, which is deterministic",
    )
    return served(spec.kind, parameters, models, plan.features, notes)


def _threshold(spec: Threshold, setting: Setting) -> Candidate:
    if setting.y_train is None:
        raise StrategyNotApplicable("thresholds apply to a decision: the model makes none")
    features, protected = setting.features, list(setting.columns.protected)
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

    def decide(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        decided = optimizer.predict(
            frame[features], sensitive_features=frame[protected], random_state=setting.seed
        )
        return np.asarray(decided, dtype=bool)

    amount = parent.models.get("amount")
    parent_amounts = (
        served("parent", {}, {"amount": amount.estimator}, features) if amount else None
    )
    return Candidate(
        strategy=spec.kind,
        parameters=spec.model_dump(exclude={"kind"}),
        features=features,
        decide=decide,
        amounts=parent_amounts.amounts if parent_amounts else None,
        models=None,
        not_deployable_reason=(
            f"needs the protected attribute ({', '.join(protected)}) at decision time, "
            "which a gateway does not receive; its thresholds are also randomized"
        ),
        notes=("the amount model is the parent's",) if amount else (),
    )


_BUILDERS: dict[str, Callable[[Any, Setting], Candidate]] = {
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
    plain scikit-learn (VotingClassifier), so a gateway loads it without fairlearn.
    """
    weights = mixture.weights_[mixture.weights_ > 0]
    members = [(f"h{i}", FrozenEstimator(mixture.predictors_[i])) for i in weights.index]
    return VotingClassifier(members, voting="hard", weights=weights.to_list()).fit(x, y)

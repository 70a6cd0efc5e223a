"""The parent's own recipe, rebuilt: its preprocessing and estimators cloned, unfitted.

A candidate differs from its parent only in what a strategy changes (features dropped
or replaced, sample weights, a constraint), so a difference in fairness is the
strategy's and not a different model family's. Pipelines that start with a column
transformer can have features taken out or swapped for another encoding; a bare
estimator can only be refitted on fewer columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from analysis.models import Outcome
from analysis.remediation.setting import Setting, StrategyNotApplicable

Steps = list[tuple[str, Any]]
FitDecision = Callable[[Any, Any, npt.NDArray[np.bool_]], Any]


@dataclass(frozen=True)
class Recipe:
    """The parent's preprocessing and estimators per outcome, unfitted, features changed."""

    features: list[str]
    steps: Mapping[Outcome, Steps]
    finals: Mapping[Outcome, tuple[str, Any]]
    shared: bool  # one preprocessing object serves both models, as in the parent

    def final(self, outcome: Outcome) -> Any:
        return self.finals[outcome][1]


def recipe(setting: Setting, drop: list[str], replace: Mapping[str, Any]) -> Recipe:
    """The parent's recipe without ``drop`` and with ``replace`` (column -> new encoder)."""
    models = {outcome: model.estimator for outcome, model in setting.parent.models.items()}
    steps: dict[Outcome, Steps] = {}
    finals: dict[Outcome, tuple[str, Any]] = {}
    for outcome, estimator in models.items():
        steps[outcome], finals[outcome] = _unfitted(estimator, drop, replace, setting.seed)
    shared = len(models) == 2 and _shares_preprocessing(models["decision"], models["amount"])
    return Recipe(
        features=[feature for feature in setting.features if feature not in drop],
        steps=steps,
        finals=finals,
        shared=shared,
    )


def train(
    setting: Setting,
    recipe: Recipe,
    *,
    fit_decision: FitDecision | None = None,
    decision_weights: npt.NDArray[np.float64] | None = None,
    amount_weights: npt.NDArray[np.float64] | None = None,
) -> dict[Outcome, Any]:
    """Fit the recipe: preprocessing once (shared if the parent shared it), then each model."""
    frame = setting.train[recipe.features]
    rows = setting.amount_rows
    fitted: dict[Outcome, Any] = {}
    decision_pre: Pipeline | None = None
    decision_x: Any = None
    if "decision" in recipe.steps:
        assert setting.y_train is not None
        decision_pre, decision_x = _fit_steps(recipe.steps["decision"], frame)
        name, final = recipe.finals["decision"]
        if fit_decision is not None:
            final = fit_decision(final, decision_x, setting.y_train)
        else:
            final.fit(decision_x, setting.y_train, **_weights(decision_weights))
        fitted["decision"] = _assemble(decision_pre, name, final)
    if "amount" in recipe.steps:
        if recipe.shared:
            amount_pre, amount_x = decision_pre, decision_x[rows]
        else:
            amount_pre, amount_x = _fit_steps(recipe.steps["amount"], frame[rows])
        name, final = recipe.finals["amount"]
        final.fit(amount_x, setting.amount_target(), **_weights(amount_weights))
        fitted["amount"] = _assemble(amount_pre, name, final)
    return fitted


def accepts_weights(estimator: Any) -> bool:
    if isinstance(estimator, TransformedTargetRegressor):  # passes them to its regressor
        return accepts_weights(estimator.regressor)
    return bool(has_fit_parameter(estimator, "sample_weight"))


def _shares_preprocessing(decision: Any, amount: Any) -> bool:
    return (
        isinstance(decision, Pipeline)
        and isinstance(amount, Pipeline)
        and len(decision) == len(amount) > 1
        and all(
            a is b for (_, a), (_, b) in zip(decision.steps[:-1], amount.steps[:-1], strict=True)
        )
    )


def _unfitted(
    estimator: Any, drop: list[str], replace: Mapping[str, Any], seed: int
) -> tuple[Steps, tuple[str, Any]]:
    if not isinstance(estimator, Pipeline) or len(estimator) < 2:
        if replace:
            raise StrategyNotApplicable(
                "transforming a feature needs a pipeline that starts with a column transformer"
            )
        return [], ("model", _seeded(clone(estimator), seed))
    steps: Steps = []
    for position, (name, step) in enumerate(estimator.steps[:-1]):
        fresh = step if step is None or isinstance(step, str) else clone(step)
        steps.append((name, _without(fresh, drop, replace) if position == 0 else fresh))
    name, final = estimator.steps[-1]
    return steps, (name, _seeded(clone(final), seed))


def _without(step: Any, drop: list[str], replace: Mapping[str, Any]) -> Any:
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


def _fit_steps(steps: Steps, frame: Any) -> tuple[Pipeline | None, Any]:
    if not steps:
        return None, frame
    preprocess = Pipeline(steps)
    return preprocess, preprocess.fit_transform(frame)


def _assemble(preprocess: Pipeline | None, name: str, final: Any) -> Any:
    return final if preprocess is None else Pipeline([*preprocess.steps, (name, final)])


def _weights(weights: npt.NDArray[np.float64] | None) -> dict[str, Any]:
    return {} if weights is None else {"sample_weight": weights}

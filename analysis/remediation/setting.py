"""What every strategy starts from (the data, the parent, the proxies) and what it produces.

A parent model has a decision model, an amount model, or both (:mod:`analysis.models`);
a candidate has the same outcomes. The decision model learns the label (the historical
decision where the manifest declares no label); the amount model learns the amount on
the rows that were granted one (every row when the model makes no decision).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.columns import ModelColumns
from analysis.models import LoadedArtifact, Outcome
from analysis.scoring import artifact_dict
from contracts.model import Lineage
from fairness.outcomes import combine_strata


class RemediationInputError(ValueError):
    """Data or roles remediation cannot work with (no retry fixes them): a decision model
    without a label to learn, an amount model without an amount column, a non-binary label."""


class StrategyNotApplicable(ValueError):
    """A strategy that cannot be applied to this model or data (the others still run)."""


@dataclass(frozen=True)
class Targets:
    """The bounds a candidate is chosen against."""

    max_accuracy_loss: float
    min_disparate_impact: float
    max_amount_disparity: float


def binary(values: pd.Series, name: str) -> npt.NDArray[np.bool_]:
    array = values.to_numpy()
    if not np.isin(array, (0, 1)).all():
        raise RemediationInputError(f"column {name!r} must hold only booleans or 0/1")
    return np.asarray(array, dtype=bool)


@dataclass(frozen=True)
class Setting:
    """The data, the parent and the proxies every strategy starts from."""

    train: pd.DataFrame
    validation: pd.DataFrame
    parent: LoadedArtifact
    columns: ModelColumns
    proxies: dict[str, list[str]]  # "none" / "confirmed" / "suspected" (confirmed + suspected)
    seed: int
    features: list[str] = field(init=False)
    target: str | None = field(init=False)  # what the decision model learns
    y_train: npt.NDArray[np.bool_] | None = field(init=False)
    amount_rows: npt.NDArray[np.bool_] = field(init=False)  # training rows the amount model saw
    train_groups: npt.NDArray[np.str_] = field(init=False)  # intersection of protected columns

    def __post_init__(self) -> None:
        columns, frame = self.columns, self.train
        decides = "decision" in self.parent.models
        target = (columns.label or columns.decision) if decides else None
        if decides and target is None:
            raise RemediationInputError(
                f"{self.parent.source} makes a decision: name the label (or the decision "
                "column) it learns"
            )
        if "amount" in self.parent.models and columns.amount is None:
            raise RemediationInputError(
                f"{self.parent.source} sets an amount: name the amount column"
            )
        granted_by = columns.decision or target
        needed = [c for c in (target, granted_by, columns.amount) if c is not None]
        features = list(self.parent.features)
        columns.require(frame, [*features, *needed], "the training data")
        columns.require(self.validation, [*features, *needed], "the validation data")
        rows = np.ones(len(frame), dtype=bool)
        if decides and granted_by is not None and columns.amount is not None:
            rows = binary(frame[granted_by], granted_by)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "target", target)
        object.__setattr__(
            self, "y_train", None if target is None else binary(frame[target], target)
        )
        object.__setattr__(self, "amount_rows", rows)
        groups = combine_strata(*(frame[column] for column in columns.protected))
        object.__setattr__(self, "train_groups", np.asarray(groups))

    @property
    def outcomes(self) -> list[Outcome]:
        return list(self.parent.models)

    def in_model(self, scope: str) -> list[str]:
        """The proxies of ``scope`` that the model actually uses."""
        return [proxy for proxy in self.proxies[scope] if proxy in self.features]

    def amount_target(self) -> pd.Series:
        assert self.columns.amount is not None
        return self.train.loc[self.amount_rows, self.columns.amount]


Decide = Callable[[pd.DataFrame], npt.NDArray[np.bool_]]
Amounts = Callable[[pd.DataFrame], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class Candidate:
    """A trained candidate: how it decides and sets amounts, and whether it can be served.

    ``models`` holds the fitted estimators by outcome when the candidate can be served
    from raw features alone (None: evaluated for the record, never deployed).
    """

    strategy: str
    parameters: dict[str, Any]  # JSON values
    features: list[str]
    decide: Decide | None
    amounts: Amounts | None
    models: Mapping[Outcome, Any] | None
    not_deployable_reason: str | None = None
    notes: tuple[str, ...] = ()

    def artifact(self, version: str, setting: Setting, lineage: Lineage) -> dict[str, Any]:
        """The generic artifact dict (:func:`analysis.scoring.artifact_dict`), lineage inside."""
        assert self.models is not None
        return artifact_dict(
            version=version,
            features=self.features,
            decision=self.models.get("decision"),
            amount=self.models.get("amount"),
            trained_on={
                "rows": len(setting.train),
                "amount_rows": int(setting.amount_rows.sum()),
                "content_digest": lineage.data_digests.get("training"),
                "parent_sha256": setting.parent.digest,
                "lineage": lineage.model_dump(mode="json"),
            },
        )


def served(
    strategy: str,
    parameters: dict[str, Any],
    models: Mapping[Outcome, Any],
    features: list[str],
    notes: tuple[str, ...] = (),
) -> Candidate:
    """A candidate that decides and sets amounts from raw features alone."""
    decision: Any = models.get("decision")
    amount: Any = models.get("amount")

    def decide(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        return np.asarray(decision.predict(frame[features]), dtype=np.bool_)

    def amounts(frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        return np.maximum(np.asarray(amount.predict(frame[features]), dtype=np.float64), 0.0)

    return Candidate(
        strategy=strategy,
        parameters=parameters,
        features=features,
        decide=decide if decision is not None else None,
        amounts=amounts if amount is not None else None,
        models=dict(models),
        notes=notes,
    )


def parent_candidate(setting: Setting) -> Candidate:
    parent = setting.parent
    models = {outcome: model.estimator for outcome, model in parent.models.items()}
    return served("parent", {"version": parent.version}, models, setting.features)

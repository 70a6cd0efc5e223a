"""Scoring with a model artifact: rows of the manifest's features in, outcomes out.

One scorer for every place that runs a model on rows (the gateway's live and shadow
decisions, sandbox validation, remediation's own check of what it wrote), built on the
one loader (:mod:`analysis.models`), so a file that loads for an audit scores the same
way everywhere. Any scikit-learn estimator or pipeline works: a binary classifier for the
decision, a regressor for the amount, or both in one artifact dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.pipeline import Pipeline
from threadpoolctl import ThreadpoolController

from analysis.models import LoadedArtifact, ModelFileError, load_artifact
from store.artifacts import ArtifactStore

# Gradient boosting and friends predict with OpenMP threads. For one-row requests that
# buys nothing and, on a busy machine, a parallel region waiting for a descheduled thread
# costs tens of milliseconds: small batches are scored serially.
_SERIAL_BELOW_ROWS = 1_000
_THREADPOOLS = ThreadpoolController()


@dataclass(frozen=True)
class Scores:
    """The outcomes of scored rows, in row order; ``None`` for an outcome the model lacks.

    With both outcomes, the amount goes with a positive decision: a negative decision's
    amount is 0 (see :class:`contracts.model.Outcomes`).
    """

    decision: npt.NDArray[np.bool_] | None
    amount: npt.NDArray[np.float64] | None

    def row(self, index: int) -> tuple[bool | None, float | None]:
        decision = None if self.decision is None else bool(self.decision[index])
        amount = None if self.amount is None else float(self.amount[index])
        return decision, amount


class Scorer:
    """A loaded artifact ready to score rows; cheap to call, built once per version.

    When the decision and amount pipelines start with the same fitted encoder object
    (pickling and skops keep the sharing), rows are encoded once for both: on one-row
    requests the encoding, not the estimators, is most of the cost.
    """

    def __init__(self, artifact: LoadedArtifact) -> None:
        self.artifact = artifact
        self.version = artifact.version
        self.features = list(artifact.features)
        decision = artifact.models.get("decision")
        amount = artifact.models.get("amount")
        self._decision = decision.estimator if decision else None
        self._amount = amount.estimator if amount else None
        self._encoder = _shared_encoder(self._decision, self._amount)

    def missing_features(self, columns: Sequence[str]) -> list[str]:
        """The features this model needs that ``columns`` lacks."""
        present = set(columns)
        return [name for name in self.features if name not in present]

    def score(self, rows: pd.DataFrame) -> Scores:
        """Score each row on the model's features (other columns are ignored)."""
        missing = self.missing_features(list(rows.columns))
        if missing:
            raise ModelFileError(f"{self.artifact.source} needs features {missing}")
        features = rows[self.features]
        threads = 1 if len(features) < _SERIAL_BELOW_ROWS else None
        with _THREADPOOLS.limit(limits=threads, user_api="openmp"):
            if self._encoder is not None:
                inputs: Any = self._encoder.transform(features)
                decide, amount = self._decision[-1], self._amount[-1]  # type: ignore[index]
            else:
                inputs, decide, amount = features, self._decision, self._amount
            decisions = None if decide is None else np.asarray(decide.predict(inputs), dtype=bool)
            amounts: npt.NDArray[np.float64] | None = None
            if amount is not None:
                amounts = np.zeros(len(features))
                granted = np.ones(len(features), dtype=bool) if decisions is None else decisions
                if granted.any():
                    predicted = np.asarray(amount.predict(inputs[granted]), dtype=float)
                    amounts[granted] = predicted
        return Scores(decision=decisions, amount=amounts)


def _shared_encoder(decision: Any, amount: Any) -> Any | None:
    """The fitted first step both pipelines share, if they do."""
    if (
        isinstance(decision, Pipeline)
        and isinstance(amount, Pipeline)
        and len(decision) == len(amount) == 2
        and decision[0] is amount[0]
    ):
        return decision[0]
    return None


def load_scorer(store: ArtifactStore, name: str, sha256: str | None) -> Scorer:
    """The scorer of a registered artifact, opened by name at its pinned digest."""
    return Scorer(load_artifact(store, name, sha256))


def artifact_dict(
    *,
    version: str,
    features: Sequence[str],
    decision: Any = None,
    amount: Any = None,
    trained_on: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The artifact dict of fitted estimators, in the format every loader reads.

    ``trained_on`` records what the version was fitted on (rows, a content digest);
    the time of writing is added.
    """
    if decision is None and amount is None:
        raise ValueError("an artifact holds a decision model, an amount model, or both")
    artifact: dict[str, Any] = {
        "features": list(features),
        "version": version,
        "trained_on": {**(trained_on or {}), "written_at": datetime.now(UTC).isoformat()},
    }
    if decision is not None:
        artifact["decision"] = decision
    if amount is not None:
        artifact["amount"] = amount
    return artifact


def save_artifact(
    store: ArtifactStore, artifact: Mapping[str, Any], *parts: str
) -> tuple[str, str]:
    """Write the artifact (skops) at ``parts`` under the store atomically; its name and sha256.

    It is read back through the one loader before this returns, so a file written here
    always loads where it is served.
    """
    name, digest = store.save(dict(artifact), *parts)
    load_artifact(store, name, digest)
    return name, digest

"""Train and save the reference credit model (approval classifier + limit regressor).

The model sees income, credit history, debt ratio and zip code, never the protected
group, and still reproduces the historical redlining through the zip code: the
failure mechanism Fairlane's audit must uncover.

An artifact is one skops file (a dict of scikit-learn pipelines and plain data, in the
format of :func:`analysis.scoring.artifact_dict`), so the gateway, the audit activities
or a notebook load and score it with the product's one scorer (``analysis/scoring.py``),
without running code from the file (``store/artifacts.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from analysis.scoring import artifact_dict
from demo.dataset import read_dataset, write_dataset
from store.artifacts import ArtifactStore

NUMERIC_FEATURES: tuple[str, ...] = ("income", "credit_history_years", "debt_ratio")
CATEGORICAL_FEATURES: tuple[str, ...] = ("zip_code",)
FEATURES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES

DEMO_MODEL_ID = "credit-limit"
DEMO_VERSION = "v1"
# Few, larger boosting steps: as accurate here as 150 small ones, half the trees to walk
# per prediction.
_BOOSTING: dict[str, Any] = {"max_iter": 80, "learning_rate": 0.2, "random_state": 0}


def _encoder() -> ColumnTransformer:
    return ColumnTransformer(
        [
            (
                "zip",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(CATEGORICAL_FEATURES),
            ),
            ("numeric", "passthrough", list(NUMERIC_FEATURES)),
        ]
    )


def train_credit_model(data: pd.DataFrame, version: str) -> dict[str, Any]:
    """Fit both pipelines on historical decisions and return the artifact dict.

    The limit regressor learns from approved applicants only (a declined applicant's
    limit of 0 is the approval model's business, not a limit) and on a log scale,
    because limits scale multiplicatively with income and with the zip-code cut.
    Both pipelines start with the same fitted encoder object, so a scorer can encode
    an applicant once for both (see :class:`analysis.scoring.Scorer`).
    """
    missing = [column for column in (*FEATURES, "approved", "credit_limit") if column not in data]
    if missing:
        raise ValueError(f"training data lacks columns {missing}")
    features = data[list(FEATURES)]
    approved = data["approved"].astype(bool).to_numpy()

    encoder = _encoder().fit(features)
    encoded = encoder.transform(features)
    classifier = HistGradientBoostingClassifier(**_BOOSTING)
    classifier.fit(encoded, approved)
    regressor = TransformedTargetRegressor(
        regressor=HistGradientBoostingRegressor(**_BOOSTING),
        func=np.log1p,
        inverse_func=np.expm1,
    )
    regressor.fit(encoded[approved], data.loc[approved, "credit_limit"].to_numpy())

    return artifact_dict(
        version=version,
        features=FEATURES,
        decision=Pipeline([("encode", encoder), ("classify", classifier)]),
        amount=Pipeline([("encode", encoder), ("regress", regressor)]),
        trained_on={
            "rows": len(data),
            "approved_rows": int(approved.sum()),
            "content_digest": f"{int(pd.util.hash_pandas_object(data, index=False).sum()):x}",
            "trained_at": datetime.now(UTC).isoformat(),
        },
    )


def save_model(store: ArtifactStore, artifact: Mapping[str, Any], *parts: str) -> tuple[str, str]:
    """Write the artifact as skops at ``parts`` under the store, atomically; its name and sha256.

    A crash never leaves a half-written model to load.
    """
    return store.save(dict(artifact), *parts)


class DemoModelFiles(BaseModel):
    """Where :func:`prepare_demo_model` put the reference case's data and model."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    version: str
    training_csv: Path
    validation_csv: Path
    artifact: Path  # the file, for reading it
    artifact_name: str  # its name in the artifacts directory, for manifests and the router
    artifacts_dir: Path  # that directory: services that open it must be configured with it


def prepare_demo_model(
    data_dir: Path,
    *,
    training_rows: int = 20_000,
    validation_rows: int = 40_000,
    seed: int = 7,
    artifacts: ArtifactStore | None = None,
) -> DemoModelFiles:
    """Write the training and validation sets and the v1 artifact, reusing any already there.

    Validation rows come from a different seed, so they are applicants the model never saw.
    The artifact goes to ``artifacts`` (default: ``<data_dir>/artifacts``, the default
    artifacts directory) as ``credit-limit/v1.skops``.
    """
    store = artifacts or ArtifactStore(data_dir / "artifacts")
    folder = data_dir / "models" / DEMO_MODEL_ID
    name = f"{DEMO_MODEL_ID}/{DEMO_VERSION}.skops"
    files = DemoModelFiles(
        model_id=DEMO_MODEL_ID,
        version=DEMO_VERSION,
        training_csv=folder / "training.csv",
        validation_csv=folder / "validation.csv",
        artifact=store.path(name),
        artifact_name=name,
        artifacts_dir=store.root.resolve(),
    )
    if not files.training_csv.is_file():
        write_dataset(files.training_csv, training_rows, seed)
    if not files.validation_csv.is_file():
        write_dataset(files.validation_csv, validation_rows, seed + 1)
    if not files.artifact.is_file():
        artifact = train_credit_model(read_dataset(files.training_csv), DEMO_VERSION)
        save_model(store, artifact, DEMO_MODEL_ID, f"{DEMO_VERSION}.skops")
    return files

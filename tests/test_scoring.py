"""The one scorer: any scikit-learn decision and/or amount model, from its artifact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from analysis.models import ModelFileError
from analysis.scoring import artifact_dict, load_scorer, save_artifact
from store.artifacts import ArtifactStore


def frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.uniform(0, 20, n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )


def fitted(rows: pd.DataFrame) -> tuple[Pipeline, Pipeline]:
    encoder = ColumnTransformer(
        [("r", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["region"])],
        remainder="passthrough",
    ).fit(rows)
    label = (rows["tenure"] > 8).to_numpy()
    payout = rows["tenure"].to_numpy() * 100.0
    decide = Pipeline([("e", encoder), ("m", LogisticRegression())]).fit(rows, label)
    amount = Pipeline([("e", encoder), ("m", LinearRegression())]).fit(rows, payout)
    return decide, amount


def test_both_outcomes_score_and_a_negative_decision_carries_no_amount(tmp_path) -> None:
    rows = frame()
    decide, amount = fitted(rows)
    store = ArtifactStore(tmp_path)
    name, digest = save_artifact(
        store,
        artifact_dict(version="v1", features=["tenure", "region"], decision=decide, amount=amount),
        "claims",
        "v1.skops",
    )
    scores = load_scorer(store, name, digest).score(rows)
    assert scores.decision is not None and scores.amount is not None
    assert scores.decision.tolist() == decide.predict(rows).tolist()
    assert (scores.amount[~scores.decision] == 0).all()
    granted = scores.decision
    assert np.allclose(scores.amount[granted], amount.predict(rows[granted]))


def test_a_decision_only_model_scores_no_amount(tmp_path) -> None:
    rows = frame()
    decide, _ = fitted(rows)
    store = ArtifactStore(tmp_path)
    saved = save_artifact(
        store,
        artifact_dict(version="v1", features=["tenure", "region"], decision=decide),
        "d.skops",
    )
    scores = load_scorer(store, *saved).score(rows.head(3))
    assert scores.amount is None
    assert scores.row(0) == (bool(decide.predict(rows.head(1))[0]), None)


def test_rows_lacking_a_feature_are_refused_by_name(tmp_path) -> None:
    rows = frame()
    decide, _ = fitted(rows)
    store = ArtifactStore(tmp_path)
    saved = save_artifact(
        store,
        artifact_dict(version="v1", features=["tenure", "region"], decision=decide),
        "d.skops",
    )
    with pytest.raises(ModelFileError, match="region"):
        load_scorer(store, *saved).score(rows.drop(columns=["region"]))


def test_a_file_swapped_under_its_name_is_refused(tmp_path) -> None:
    rows = frame()
    decide, amount = fitted(rows)
    store = ArtifactStore(tmp_path)
    name, digest = save_artifact(
        store,
        artifact_dict(version="v1", features=["tenure", "region"], decision=decide),
        "m.skops",
    )
    save_artifact(
        store, artifact_dict(version="v1", features=["tenure", "region"], amount=amount), "m.skops"
    )
    with pytest.raises(ModelFileError):
        load_scorer(store, name, digest)

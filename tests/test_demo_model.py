"""The reference case holds: planted redlining, a zip-code proxy, and a model that learns it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from analysis.models import ModelFileError, open_model_file
from analysis.scoring import Scorer, load_scorer
from demo.credit_model import (
    FEATURES,
    DemoModelFiles,
    prepare_demo_model,
    save_model,
    train_credit_model,
)
from demo.dataset import (
    COLUMNS,
    CREDIT_BAND_LABELS,
    INCOME_BAND_LABELS,
    credit_band,
    credit_bands,
    generate_applicants,
    income_band,
    income_bands,
    read_dataset,
    write_dataset,
)
from fairness.outcomes import ConditionalDisparity, combine_strata, conditional_disparity
from store.artifacts import ArtifactStore
from tests.fixtures.gateway import rules_decision, rules_scores


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> DemoModelFiles:
    return prepare_demo_model(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def validation(demo_files: DemoModelFiles) -> pd.DataFrame:
    return read_dataset(demo_files.validation_csv)


def limit_disparity(
    frame: pd.DataFrame, approved: pd.Series, limits: pd.Series
) -> ConditionalDisparity:
    """Gap in granted limits between groups at the same income band x credit band."""
    granted = frame[approved.to_numpy()]
    return conditional_disparity(
        limits[approved.to_numpy()],
        granted["group"],
        combine_strata(granted["income_band"], granted["credit_band"]),
    )


def test_a_seed_names_a_data_set() -> None:
    pd.testing.assert_frame_equal(generate_applicants(2_000, 3), generate_applicants(2_000, 3))
    assert not generate_applicants(2_000, 3).equals(generate_applicants(2_000, 4))


def test_applicants_look_like_the_brief() -> None:
    data = generate_applicants(20_000, 1)
    assert list(data.columns) == list(COLUMNS)
    assert data["applicant_id"].is_unique
    assert data["income"].between(15_000, 250_000).all()
    assert data["credit_history_years"].between(0, 30).all()
    assert data["debt_ratio"].between(0, 1).all()
    assert set(data["zip_code"]) == {f"Z{i:02d}" for i in range(20)}
    assert (data["group"] == "B").mean() == pytest.approx(0.35, abs=0.02)
    assert (data.loc[~data["approved"], "credit_limit"] == 0).all()
    assert (data.loc[data["approved"], "credit_limit"] > 0).all()
    assert set(data["income_band"]) == set(INCOME_BAND_LABELS)
    assert set(data["credit_band"]) == set(CREDIT_BAND_LABELS)


def test_band_functions_agree_on_every_edge() -> None:
    incomes = [
        15_000,
        19_999,
        20_000,
        29_999.99,
        30_000,
        59_999,
        60_000,
        74_999,
        75_000,
        100_000,
        149_999,
        150_000,
        250_000,
    ]
    years = [0, 1.9, 2, 4.9, 5, 9.9, 10, 30]
    assert list(income_bands(incomes)) == [income_band(x) for x in incomes]
    assert list(credit_bands(years)) == [credit_band(y) for y in years]
    assert income_band(30_000) == "30-40k"
    assert income_band(74_999) == "60-75k"
    assert credit_band(2.0) == "2-5y"
    assert credit_band(10.0) == "10y+"


def test_zip_code_is_a_strong_proxy_for_group() -> None:
    train, test = generate_applicants(10_000, 21), generate_applicants(10_000, 22)
    majority_by_zip = train.groupby("zip_code")["group"].agg(lambda g: g.mode().iloc[0])
    accuracy = (test["zip_code"].map(majority_by_zip) == test["group"]).mean()
    base_rate = (test["group"] == "A").mean()
    assert base_rate < 0.7
    assert accuracy > 0.9


def test_history_is_biased_against_group_b_at_equal_income_and_history() -> None:
    data = generate_applicants(20_000, 5)
    gap = limit_disparity(data, data["approved"], data["credit_limit"])
    assert gap.worst_group == "B"
    assert gap.relative_gap == pytest.approx(0.30, abs=0.05)
    rates = data.groupby("group")["approved"].mean()
    assert rates["B"] < rates["A"]


def test_write_and_read_round_trip(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "sub" / "applicants.csv", 500, 8)
    pd.testing.assert_frame_equal(read_dataset(path), generate_applicants(500, 8))


def test_the_model_never_sees_group(demo_files: DemoModelFiles, validation: pd.DataFrame) -> None:
    model = Scorer(open_model_file(demo_files.artifact))
    assert "group" not in model.features
    assert model.features == list(FEATURES)
    without_group = model.score(validation.drop(columns=["group"]).head(50))
    with_group = model.score(validation.head(50))
    assert without_group.decision is not None and with_group.decision is not None
    assert without_group.amount is not None and with_group.amount is not None
    assert (without_group.decision == with_group.decision).all()
    assert (without_group.amount == with_group.amount).all()


def test_the_model_learns_the_redlining_and_the_rules_do_not(
    demo_files: DemoModelFiles, validation: pd.DataFrame
) -> None:
    scored = Scorer(open_model_file(demo_files.artifact)).score(validation)
    model_gap = limit_disparity(validation, pd.Series(scored.decision), pd.Series(scored.amount))
    assert model_gap.worst_group == "B"
    assert model_gap.relative_gap is not None
    assert 0.25 <= model_gap.relative_gap <= 0.35

    rules_gap = limit_disparity(validation, *rules_scores(validation))
    assert rules_gap.relative_gap is not None
    assert rules_gap.relative_gap < 0.05


def test_prepare_demo_model_reuses_what_is_there(demo_files: DemoModelFiles) -> None:
    stamps = [
        path.stat().st_mtime_ns
        for path in (demo_files.training_csv, demo_files.validation_csv, demo_files.artifact)
    ]
    data_dir = demo_files.artifacts_dir.parent
    again = prepare_demo_model(data_dir)
    assert again == demo_files
    assert demo_files.artifact == data_dir / "artifacts" / "credit-limit" / "v1.skops"
    assert demo_files.artifact_name == "credit-limit/v1.skops"
    assert [
        path.stat().st_mtime_ns
        for path in (again.training_csv, again.validation_csv, again.artifact)
    ] == stamps


def test_artifact_is_plain_sklearn_and_round_trips(tmp_path: Path) -> None:
    artifact = train_credit_model(generate_applicants(2_000, 2), "v-test")
    store = ArtifactStore(tmp_path)
    name, digest = save_model(store, artifact, "m.skops")
    assert sio.get_untrusted_types(file=store.path(name)) == [
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    ]
    raw = store.load(name, digest)
    assert set(raw) == {"decision", "amount", "features", "version", "trained_on"}
    assert type(raw["decision"]).__module__.startswith("sklearn.")
    assert type(raw["amount"]).__module__.startswith("sklearn.")
    model = load_scorer(store, name, digest)
    assert model.version == "v-test"
    assert model.artifact.trained_on["rows"] == 2_000


def test_missing_artifact_raises_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        open_model_file(tmp_path / "absent.skops")


def test_corrupt_artifact_raises_model_load_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.skops"
    path.write_bytes(b"this is not a skops file")
    with pytest.raises(ModelFileError, match="not a skops file"):
        open_model_file(path)


def test_foreign_artifact_raises_model_load_error(tmp_path: Path) -> None:
    path = tmp_path / "foreign.skops"
    sio.dump({"weights": [1, 2, 3]}, path)
    with pytest.raises(ModelFileError, match="not a model artifact"):
        open_model_file(path)


def test_an_artifact_without_a_shared_encoder_scores_through_its_pipelines(tmp_path: Path) -> None:
    data = generate_applicants(1_500, 4)
    features = data[list(FEATURES)]
    granted = data["approved"].to_numpy()

    def encoder() -> ColumnTransformer:
        return ColumnTransformer(
            [("zip", OneHotEncoder(handle_unknown="ignore"), ["zip_code"])],
            remainder="passthrough",
        )

    approval = make_pipeline(encoder(), LogisticRegression(max_iter=500)).fit(
        features, data["approved"]
    )
    limit = make_pipeline(encoder(), LinearRegression()).fit(
        features[granted], data.loc[granted, "credit_limit"]
    )
    artifact = {
        "approval": approval,
        "limit": limit,
        "features": list(FEATURES),
        "version": "linear",
        "trained_on": {"rows": len(data)},
    }
    store = ArtifactStore(tmp_path)
    model = load_scorer(store, *save_model(store, artifact, "linear.skops"))

    sample = features.head(40)
    expected_approved = approval.predict(sample).astype(bool)
    expected_limits = np.where(expected_approved, limit.predict(sample), 0.0)
    scores = model.score(sample)
    assert scores.decision is not None and scores.amount is not None
    assert scores.decision.tolist() == expected_approved.tolist()
    assert np.allclose(scores.amount, expected_limits)


def test_the_rules_yaml_reproduces_the_published_schedule() -> None:
    """demo/credit-fallback.yaml is the schedule the Python rules used to hard-code:
    three thresholds, then a base limit per income tier scaled by credit-history band."""
    floors = (30_000.0, 60_000.0, 100_000.0, 150_000.0)
    bases = (2_000.0, 5_000.0, 9_000.0, 14_000.0, 20_000.0)
    factors = dict(zip(CREDIT_BAND_LABELS, (0.6, 0.8, 1.0, 1.2), strict=True))

    def published(income: float, years: float, debt: float) -> tuple[bool, float]:
        if debt > 0.45 or years < 1.0 or income < 18_000.0:
            return False, 0.0
        tier = sum(income >= floor for floor in floors)
        return True, bases[tier] * factors[credit_band(years)]

    rng = np.random.default_rng(0)
    edges = [17_999.0, 18_000.0, 29_999.0, 30_000.0, 60_000.0, 100_000.0, 150_000.0]
    incomes = [*edges, *rng.uniform(5_000, 250_000, 300)]
    for income in incomes:
        for years in (0.5, 1.0, 1.99, 2.0, 4.9, 5.0, 9.99, 10.0, 25.0):
            for debt in (0.1, 0.45, 0.46):
                approved, limit = rules_decision(income, years, debt)
                expected = published(income, years, debt)
                assert approved == expected[0]
                assert limit == pytest.approx(expected[1])

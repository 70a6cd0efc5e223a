"""SHAP attribution: exact where it should be, additive, and it finds the planted zip-code proxy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVR
from threadpoolctl import threadpool_limits

from analysis.attribution import attribution_audit, explain, stratified_slice
from analysis.data import DataFileError
from analysis.models import LoadedArtifact, ModelFileError, open_model_file, read_artifact
from demo.credit_model import DemoModelFiles, prepare_demo_model
from demo.dataset import read_dataset


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> DemoModelFiles:
    # One OpenMP thread: on a busy 2-core machine boosting with two threads stalls.
    with threadpool_limits(limits=1, user_api="openmp"):
        return prepare_demo_model(
            tmp_path_factory.mktemp("demo"), training_rows=6_000, validation_rows=3_000
        )


@pytest.fixture(scope="module")
def demo_model(demo_files: DemoModelFiles) -> LoadedArtifact:
    return open_model_file(demo_files.artifact)


@pytest.fixture(scope="module")
def validation(demo_files: DemoModelFiles) -> pd.DataFrame:
    return read_dataset(demo_files.validation_csv)


def independent_features(rows: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(3.0, 1.0, rows),
            "x2": rng.uniform(-2.0, 5.0, rows),
            "x3": rng.exponential(2.0, rows),
        }
    )


def test_linear_shap_matches_the_closed_form() -> None:
    frame = independent_features()
    target = 2.0 * frame["x1"] - 0.5 * frame["x2"] + 0.25 * frame["x3"] + 1.0
    model = LinearRegression().fit(frame, target)
    split = read_artifact(model, source="memory").model("amount").explainable(frame)

    explanation = explain(split, frame.iloc[:50], background=frame)

    # phi_i = w_i (x_i - E[x_i]) for a linear model of independent features.
    expected = model.coef_ * (frame.iloc[:50].to_numpy() - frame.mean().to_numpy())
    assert explanation.info.name == "LinearExplainer" and explanation.info.exact
    np.testing.assert_allclose(explanation.values, expected, atol=1e-10)
    np.testing.assert_allclose(explanation.base_values, model.predict(frame).mean(), atol=1e-10)


def test_logistic_shap_matches_the_closed_form_in_log_odds() -> None:
    frame = independent_features()
    logit = 1.2 * (frame["x1"] - 3.0) - 0.8 * (frame["x2"] - 1.5)
    labels = np.random.default_rng(2).random(len(frame)) < 1.0 / (1.0 + np.exp(-logit))
    model = LogisticRegression().fit(frame, labels)
    split = read_artifact(model, source="memory").model("decision").explainable(frame)

    explanation = explain(split, frame, background=frame)

    expected = model.coef_[0] * (frame.to_numpy() - frame.mean().to_numpy())
    assert split.scale.kind == "log_odds"
    np.testing.assert_allclose(explanation.values, expected, atol=1e-10)


@pytest.mark.parametrize("outcome", ["decision", "amount"])
def test_shap_of_the_demo_pipelines_adds_up_to_their_output(
    demo_model: LoadedArtifact, validation: pd.DataFrame, outcome: str
) -> None:
    model = demo_model.model(outcome)  # type: ignore[arg-type]
    rows = validation.iloc[:1_000]

    explanation = explain(model.explainable(rows), rows, background=rows)

    # The pipelines' own outputs: log-odds of approval, and the log1p limit its target was.
    pipeline = model.estimator
    if outcome == "decision":
        output = pipeline.decision_function(rows)
    else:
        output = np.log1p(pipeline.predict(rows))
    assert explanation.info.name == "TreeExplainer" and explanation.info.exact
    assert explanation.features == demo_model.features
    np.testing.assert_allclose(
        explanation.values.sum(axis=1) + explanation.base_values, output, atol=1e-8
    )


def test_zip_code_drives_the_limit_gap_and_is_a_confirmed_proxy(
    demo_model: LoadedArtifact, validation: pd.DataFrame
) -> None:
    report = attribution_audit(
        demo_model,
        validation,
        protected=["group"],
        outcome="amount",
        sample_size=1_500,
        suspected_proxies=["zip_code", "debt_ratio"],
    )

    gap = report.gaps[0]
    assert (gap.reference_group, gap.group) == ("A", "B")
    assert gap.drivers[0].feature == "zip_code"
    assert gap.drivers[0].share is not None and gap.drivers[0].share > 0.6
    assert report.confirmed_proxies == ["zip_code"]
    assert "debt_ratio" not in gap.top_drivers
    # The contributions add up to the gap in mean log-limit.
    assert sum(d.contribution for d in gap.drivers) == pytest.approx(gap.gap, abs=1e-9)
    assert abs(gap.unexplained) < 1e-9
    assert gap.gap < -0.2  # the planted cut: about a third lower limits
    assert report.scale.name == "log-amount"
    assert report.headline.startswith("zip_code drives")
    assert report.headline.endswith("confirmed proxy")
    assert report.rows_scope == "rows the decision model approves"
    assert report.explainer.name == "TreeExplainer"
    assert {f.feature for f in report.features} == set(demo_model.features)


def test_a_proxy_nobody_suspected_is_a_driver_but_not_confirmed(
    demo_model: LoadedArtifact, validation: pd.DataFrame
) -> None:
    report = attribution_audit(
        demo_model, validation, protected=["group"], outcome="decision", sample_size=1_000
    )

    assert "zip_code" in report.gaps[0].top_drivers
    assert report.confirmed_proxies == []
    assert "proxy" not in report.headline  # nobody suspected anything: nothing to say
    assert report.scale.kind == "log_odds"
    told = attribution_audit(
        demo_model,
        validation,
        protected=["group"],
        outcome="decision",
        sample_size=1_000,
        suspected_proxies=["debt_ratio"],
    )
    assert told.headline.endswith("not a suspected proxy")


def test_the_slice_keeps_each_groups_share(validation: pd.DataFrame) -> None:
    sliced = stratified_slice(validation, ["group"], 1_000, seed=3)

    assert abs(len(sliced) - 1_000) <= 2
    share = validation["group"].value_counts(normalize=True)
    sliced_share = sliced["group"].value_counts(normalize=True)
    assert sliced_share["B"] == pytest.approx(share["B"], abs=0.002)


def test_a_model_with_no_exact_explainer_gets_a_sampled_one_that_still_adds_up() -> None:
    frame = independent_features(rows=300)
    model = SVR().fit(frame, frame["x1"] * frame["x2"])
    split = read_artifact(model, source="memory").model("amount").explainable(frame)

    explanation = explain(
        split, frame.iloc[:40], background=frame.iloc[:30], sampled_rows=20, permutations=2
    )

    info = explanation.info
    assert info.name == "PermutationExplainer" and not info.exact
    assert info.rows == 20 and explanation.values.shape == (20, 3)
    assert info.background_rows == 30 and info.max_evals_per_row == 2 * (2 * 3 + 1)
    assert info.max_additivity_error < 1e-8


def test_an_audit_with_the_sampled_explainer_keeps_rows_and_groups_aligned() -> None:
    frame = independent_features(rows=400)
    frame["group"] = np.where(np.arange(400) % 4 == 0, "B", "A")
    frame.loc[frame["group"] == "B", "x1"] += 2.0  # B's only difference: a higher x1
    model = SVR().fit(frame[["x1", "x2", "x3"]], 2.0 * frame["x1"] + frame["x2"])
    artifact = read_artifact(model, source="memory")

    report = attribution_audit(
        artifact,
        frame,
        protected=["group"],
        outcome="amount",
        sampled_rows=80,
        background_size=30,
        permutations=2,
        min_group_rows=10,
    )

    assert report.explainer.name == "PermutationExplainer"
    assert report.rows == report.explainer.rows == sum(report.rows_by_group["group"].values())
    assert report.rows_by_group["group"]["B"] == pytest.approx(report.rows / 4, abs=2)
    gap = report.gaps[0]
    assert (gap.reference_group, gap.group) == ("B", "A")
    assert gap.drivers[0].feature == "x1"
    assert abs(gap.unexplained) < 1e-8


def test_an_untraceable_encoding_is_explained_on_raw_features() -> None:
    frame = independent_features(rows=300)
    model = make_pipeline(PCA(n_components=2), LinearRegression()).fit(frame, frame["x1"])
    split = read_artifact(model, source="memory").model("amount").explainable(frame)

    explanation = explain(split, frame.iloc[:20], background=frame.iloc[:30], permutations=2)

    assert explanation.info.name == "PermutationExplainer"
    assert explanation.info.space == "raw features"
    assert explanation.values.shape == (20, 3)


def test_bad_inputs_are_named(demo_model: LoadedArtifact, validation: pd.DataFrame) -> None:
    with pytest.raises(DataFileError, match="ethnicity"):
        attribution_audit(demo_model, validation, protected=["ethnicity"], outcome="decision")
    decision_only = read_artifact(demo_model.model("decision").estimator, source="approval only")
    with pytest.raises(ModelFileError, match="no amount model"):
        attribution_audit(decision_only, validation, protected=["group"], outcome="amount")

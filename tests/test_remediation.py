"""Remediation: reweighing's known answer, balanced regions, a fair candidate a gateway serves.

The demo makes the data; the engine sees only generic artifacts and the manifest's roles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from threadpoolctl import threadpool_limits

from analysis.attribution import attribution_audit
from analysis.columns import ModelColumns
from analysis.models import load_artifact, open_model_file, read_artifact
from analysis.remediation import (
    Constrained,
    DropProxies,
    RemediationResult,
    Reweigh,
    StrategySpec,
    Threshold,
    TransformProxies,
    balanced_regions,
    region_encoder,
    remediate,
)
from analysis.scoring import load_scorer
from demo.credit_model import DemoModelFiles, prepare_demo_model
from demo.dataset import read_dataset
from fairness.reweighing import kamiran_calders_weights
from store.artifacts import ArtifactStore

DEMO_COLUMNS = {
    "columns": ModelColumns(
        protected=("group",),
        label="approved",
        decision="approved",
        amount="credit_limit",
        strata=("income_band", "credit_band"),
    )
}


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> DemoModelFiles:
    # One OpenMP thread: on a busy 2-core machine boosting with two threads stalls.
    with threadpool_limits(limits=1, user_api="openmp"):
        return prepare_demo_model(
            tmp_path_factory.mktemp("demo"), training_rows=6_000, validation_rows=3_000
        )


@pytest.fixture(scope="module")
def train(demo_files: DemoModelFiles) -> pd.DataFrame:
    return read_dataset(demo_files.training_csv)


@pytest.fixture(scope="module")
def validation(demo_files: DemoModelFiles) -> pd.DataFrame:
    return read_dataset(demo_files.validation_csv)


@pytest.fixture(scope="module")
def remediation(
    demo_files: DemoModelFiles,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> RemediationResult:
    strategies: list[StrategySpec] = [
        DropProxies(),
        TransformProxies(),
        Reweigh(),
        Threshold(),
    ]
    return remediate(
        train,
        validation,
        demo_files.artifact,
        **DEMO_COLUMNS,  # type: ignore[arg-type]
        confirmed_proxies=["zip_code"],
        suspected_proxies=[],
        strategies=strategies,
        store=ArtifactStore(demo_files.artifacts_dir),
        output=("candidates", "candidate.skops"),
    )


def test_kamiran_calders_weights_known_answer() -> None:
    # A: 2 approved, 1 declined; B: 1 approved, 4 declined (8 rows).
    groups = ["A", "A", "A", "B", "B", "B", "B", "B"]
    labels = [1, 1, 0, 1, 0, 0, 0, 0]

    weights = kamiran_calders_weights(groups, labels)

    # w(g, y) = P(g) P(y) / P(g, y): (3/8)(3/8)/(2/8), (3/8)(5/8)/(1/8), ...
    expected = [9 / 16, 9 / 16, 15 / 8, 15 / 8, 25 / 32, 25 / 32, 25 / 32, 25 / 32]
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    assert weights.sum() == pytest.approx(len(groups))


def test_reweighted_data_has_group_and_label_independent() -> None:
    rng = np.random.default_rng(5)
    groups = rng.choice(["A", "B", "C"], size=5_000, p=[0.6, 0.3, 0.1])
    rates = {"A": 0.7, "B": 0.4, "C": 0.2}
    labels = rng.random(5_000) < np.vectorize(rates.get)(groups)

    weights = kamiran_calders_weights(groups, labels)

    joint = pd.Series(weights).groupby([groups, labels]).sum().unstack() / weights.sum()
    independent = np.outer(joint.sum(axis=1), joint.sum(axis=0))
    np.testing.assert_allclose(joint.to_numpy(), independent, atol=1e-12)
    # Each group keeps its size, the label its overall rate.
    group_share = pd.Series(weights).groupby(groups).sum() / weights.sum()
    np.testing.assert_allclose(
        group_share, pd.Series(groups).value_counts(normalize=True).sort_index()
    )


def test_balanced_regions_pair_opposite_categories() -> None:
    # Two categories mostly B, two mostly A: each of two regions should get one of each.
    categories = pd.Series(["b1"] * 100 + ["a1"] * 100 + ["b2"] * 100 + ["a2"] * 100)
    groups = ["B"] * 90 + ["A"] * 10 + ["A"] * 90 + ["B"] * 10
    groups = groups * 2

    assignment = balanced_regions(categories, groups, regions=2)

    assert assignment["b1"] != assignment["b2"]
    assert assignment["a1"] != assignment["a2"]
    region_mix = pd.crosstab(categories.map(assignment), np.asarray(groups))
    assert (region_mix.to_numpy() == 100).all()


def test_the_region_encoder_maps_categories_to_regions_and_unseen_ones_to_nothing() -> None:
    encoder = region_encoder({"z1": 0, "z2": 1, "z3": 0, "z4": 1})
    training = pd.DataFrame({"zip": ["z1", "z2", "z3", "z4"]})

    encoded = encoder.fit(training).transform(pd.DataFrame({"zip": ["z3", "z4", "z9"]}))

    np.testing.assert_array_equal(encoded, [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])


def test_the_chosen_candidate_closes_the_limit_gap_within_the_accuracy_bound(
    remediation: RemediationResult,
) -> None:
    parent, chosen = remediation.points[0], remediation.chosen

    assert parent.name == "parent" and parent.amount_disparity is not None
    assert parent.amount_disparity > 0.2  # the planted ~30% cut
    assert chosen is not None and chosen.deployable
    assert chosen.amount_disparity is not None and chosen.amount_disparity < 0.015
    assert chosen.accuracy_loss <= 0.02
    assert chosen.disparate_impact_ratio is not None and chosen.disparate_impact_ratio >= 0.8
    assert chosen.meets_fairness_targets
    assert remediation.headline.startswith(chosen.name)
    assert remediation.not_applicable == {}


def test_every_strategy_is_a_recorded_trade_off_point(remediation: RemediationResult) -> None:
    points = {point.strategy: point for point in remediation.points}

    assert list(points) == [
        "parent",
        "drop_proxies",
        "transform_proxies",
        "reweigh",
        "threshold",
    ]
    assert points["drop_proxies"].parameters["dropped"] == ["zip_code"]
    transformed: Any = points["transform_proxies"].parameters["transformed"]
    zip_code = transformed["zip_code"]
    assert zip_code["cramers_v_after"] < zip_code["cramers_v_before"] / 2
    threshold = points["threshold"]
    assert not threshold.deployable
    assert threshold.not_deployable_reason is not None
    assert "protected attribute" in threshold.not_deployable_reason
    assert remediation.chosen is not None and remediation.chosen.strategy != "threshold"


def test_the_candidate_is_a_generic_artifact_with_its_lineage(
    demo_files: DemoModelFiles, remediation: RemediationResult, validation: pd.DataFrame
) -> None:
    assert remediation.artifact is not None and remediation.chosen is not None
    store = ArtifactStore(demo_files.artifacts_dir)

    raw = store.load(remediation.artifact, remediation.artifact_sha256)
    served = load_scorer(store, remediation.artifact, remediation.artifact_sha256)
    scores = served.score(validation)

    assert set(raw) == {"decision", "amount", "features", "version", "trained_on"}
    assert raw["decision"][0] is raw["amount"][0]  # one encoder, shared as in the parent
    assert served.version == remediation.candidate_version
    lineage = raw["trained_on"]["lineage"]
    assert lineage == remediation.lineage.model_dump(mode="json")  # type: ignore[union-attr]
    assert lineage["parent"] == "v1"
    assert lineage["strategy"] == remediation.chosen.name
    assert lineage["code_version"]
    assert len(lineage["data_digests"]["training"]) == 64
    assert scores.decision is not None and scores.amount is not None
    accuracy = float(np.mean(scores.decision == validation["approved"].to_numpy()))
    assert accuracy == pytest.approx(remediation.chosen.accuracy)
    assert (scores.amount[~scores.decision] == 0.0).all()


def test_a_constrained_candidate_is_served_as_a_deterministic_vote(
    demo_files: DemoModelFiles, train: pd.DataFrame, validation: pd.DataFrame, tmp_path: Path
) -> None:
    # Each reduction step refits the classifier: a small training set keeps this quick.
    result = remediate(
        train.iloc[:2_000],
        validation,
        demo_files.artifact,
        **DEMO_COLUMNS,  # type: ignore[arg-type]
        confirmed_proxies=["zip_code"],
        suspected_proxies=[],
        strategies=[Constrained(constraint="demographic_parity", max_iter=3)],
        store=ArtifactStore(tmp_path),
        output=("candidates", "constrained.skops"),
    )

    assert result.chosen is not None and result.chosen.strategy == "constrained"
    assert result.artifact is not None
    store = ArtifactStore(tmp_path)
    # plain scikit-learn to serve
    assert not any(
        "fairlearn" in t for t in sio.get_untrusted_types(file=store.path(result.artifact))
    )
    assert b"fairlearn" not in store.path(result.artifact).read_bytes()
    served = load_scorer(store, result.artifact, result.artifact_sha256)
    first, again = served.score(validation), served.score(validation)
    assert first.decision is not None and again.decision is not None
    np.testing.assert_array_equal(first.decision, again.decision)
    accuracy = float(np.mean(first.decision == validation["approved"].to_numpy()))
    assert accuracy == pytest.approx(result.chosen.accuracy)


def test_a_region_candidate_is_served_and_treats_an_unseen_zip_code_as_no_region(
    demo_files: DemoModelFiles, train: pd.DataFrame, validation: pd.DataFrame, tmp_path: Path
) -> None:
    result = remediate(
        train,
        validation,
        demo_files.artifact,
        **DEMO_COLUMNS,  # type: ignore[arg-type]
        confirmed_proxies=["zip_code"],
        suspected_proxies=[],
        strategies=[TransformProxies(regions=3)],
        store=ArtifactStore(tmp_path),
        output=("candidates", "regions.skops"),
    )
    assert result.artifact is not None
    served = load_scorer(ArtifactStore(tmp_path), result.artifact, result.artifact_sha256)
    applicants = validation.iloc[:50].assign(zip_code=["Z99"] * 25 + ["Z00"] * 25)

    scores = served.score(applicants)

    assert served.features == ["income", "credit_history_years", "debt_ratio", "zip_code"]
    assert scores.decision is not None and len(scores.decision) == 50


def test_the_candidate_no_longer_has_a_confirmed_proxy(
    demo_files: DemoModelFiles, remediation: RemediationResult, validation: pd.DataFrame
) -> None:
    assert remediation.artifact is not None
    candidate = load_artifact(
        ArtifactStore(demo_files.artifacts_dir), remediation.artifact, remediation.artifact_sha256
    )

    report = attribution_audit(
        candidate,
        validation,
        protected=["group"],
        outcome="amount",
        sample_size=1_000,
        suspected_proxies=["zip_code"],
    )

    assert report.confirmed_proxies == []


def test_the_result_crosses_a_json_boundary_without_the_estimators(
    remediation: RemediationResult,
) -> None:
    assert remediation.candidate_artifact is not None
    restored = RemediationResult.model_validate_json(remediation.model_dump_json())

    assert restored.candidate_artifact is None
    assert restored.points == remediation.points


def test_a_retried_remediation_names_the_same_version(
    demo_files: DemoModelFiles, train: pd.DataFrame, validation: pd.DataFrame
) -> None:
    def run() -> RemediationResult:
        return remediate(
            train,
            validation,
            open_model_file(demo_files.artifact),
            **DEMO_COLUMNS,  # type: ignore[arg-type]
            confirmed_proxies=["zip_code"],
            suspected_proxies=[],
            strategies=[DropProxies()],
        )

    assert run().candidate_version == run().candidate_version


def test_a_strategy_with_nothing_to_act_on_is_reported_not_applicable(
    demo_files: DemoModelFiles, train: pd.DataFrame, validation: pd.DataFrame
) -> None:
    result = remediate(
        train,
        validation,
        demo_files.artifact,
        **DEMO_COLUMNS,  # type: ignore[arg-type]
        confirmed_proxies=[],
        suspected_proxies=[],
        strategies=[DropProxies()],
    )

    assert "no confirmed proxy" in result.not_applicable["drop_proxies"]
    assert result.chosen is None and result.artifact is None
    assert result.headline.startswith("no candidate")


def test_a_decision_only_model_gets_a_decision_only_candidate(
    demo_files: DemoModelFiles, train: pd.DataFrame, validation: pd.DataFrame, tmp_path: Path
) -> None:
    decision_only = read_artifact(
        open_model_file(demo_files.artifact).model("decision").estimator, source="decision only"
    )
    columns = ModelColumns(protected=("group",), label="approved", decision="approved")

    result = remediate(
        train,
        validation,
        decision_only,
        columns=columns,
        confirmed_proxies=["zip_code"],
        suspected_proxies=[],
        strategies=[DropProxies(), Reweigh()],
        store=ArtifactStore(tmp_path),
        output=("candidates", "decision.skops"),
    )

    assert result.chosen is not None and result.artifact is not None
    parent = result.points[0]
    assert parent.amount_disparity is None and parent.disparate_impact_ratio is not None
    assert parent.accuracy_measure == "accuracy"
    candidate = load_artifact(ArtifactStore(tmp_path), result.artifact, result.artifact_sha256)
    assert set(candidate.models) == {"decision"}
    assert "amount" not in result.headline


def test_an_amount_only_model_is_remediated_on_amounts_with_binned_strata(
    demo_files: DemoModelFiles, train: pd.DataFrame, validation: pd.DataFrame, tmp_path: Path
) -> None:
    """A model that only sets an amount, over every row; strata from the manifest's bins."""
    from contracts.model import StratumBins

    amount_model = open_model_file(demo_files.artifact).model("amount").estimator
    amount_only = read_artifact(amount_model, source="amount only")
    granted = train[train["approved"] == 1]
    held = validation[validation["approved"] == 1]
    bands = StratumBins.model_validate(
        {
            "feature": "income",
            "bins": [
                {"label": "low", "below": 40_000},
                {"label": "mid", "at_least": 40_000, "below": 80_000},
                {"label": "high", "at_least": 80_000},
            ],
        }
    )
    columns = ModelColumns(
        protected=("group",), amount="credit_limit", strata=("bands",), bins={"bands": bands}
    )

    result = remediate(
        granted,
        held,
        amount_only,
        columns=columns,
        confirmed_proxies=["zip_code"],
        suspected_proxies=[],
        strategies=[DropProxies(), Constrained()],
        store=ArtifactStore(tmp_path),
        output=("candidates", "amount.skops"),
    )

    parent = result.points[0]
    assert parent.accuracy_measure == "r2" and parent.disparate_impact_ratio is None
    assert parent.amount_disparity is not None and parent.amount_disparity > 0.2
    assert "a decision" in result.not_applicable["constrained"]
    assert result.chosen is not None and result.chosen.amount_disparity is not None
    assert result.chosen.amount_disparity < parent.amount_disparity / 2
    assert result.artifact is not None
    candidate = load_artifact(ArtifactStore(tmp_path), result.artifact, result.artifact_sha256)
    assert set(candidate.models) == {"amount"}


def test_playbook_strategies_are_taken_as_they_are(
    demo_files: DemoModelFiles, train: pd.DataFrame, validation: pd.DataFrame
) -> None:
    from playbooks.steps import RemediationStrategy

    result = remediate(
        train.iloc[:2_000],
        validation,
        demo_files.artifact,
        **DEMO_COLUMNS,  # type: ignore[arg-type]
        confirmed_proxies=["zip_code"],
        suspected_proxies=[],
        strategies=[RemediationStrategy(name="drop_proxies")],
    )

    assert [p.strategy for p in result.points] == ["parent", "drop_proxies"]


def test_a_model_that_makes_a_decision_needs_a_label_to_learn(
    demo_files: DemoModelFiles, train: pd.DataFrame, validation: pd.DataFrame
) -> None:
    with pytest.raises(ValueError, match="makes a decision"):
        remediate(
            train,
            validation,
            demo_files.artifact,
            columns=ModelColumns(protected=("group",), amount="credit_limit"),
            confirmed_proxies=["zip_code"],
            suspected_proxies=[],
            strategies=[DropProxies()],
        )


def test_a_label_that_is_not_binary_is_refused(
    demo_files: DemoModelFiles, train: pd.DataFrame, validation: pd.DataFrame
) -> None:
    columns = ModelColumns(
        protected=("group",), label="credit_limit", decision="approved", amount="credit_limit"
    )

    with pytest.raises(ValueError, match="credit_limit"):
        remediate(
            train,
            validation,
            demo_files.artifact,
            columns=columns,
            confirmed_proxies=["zip_code"],
            suspected_proxies=[],
            strategies=[DropProxies()],
        )

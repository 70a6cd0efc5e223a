"""Model files open generically (credit artifact or bare estimator) or fail with a clear reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from analysis.models import ModelFileError, open_model_file, read_artifact
from demo.credit_model import DemoModelFiles, prepare_demo_model
from demo.dataset import read_dataset
from store.artifacts import ArtifactStore


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> DemoModelFiles:
    # One OpenMP thread: on a busy 2-core machine boosting with two threads stalls.
    with threadpool_limits(limits=1, user_api="openmp"):
        return prepare_demo_model(
            tmp_path_factory.mktemp("demo"), training_rows=3_000, validation_rows=1_000
        )


@pytest.fixture(scope="module")
def applicants(demo_files: DemoModelFiles) -> pd.DataFrame:
    return read_dataset(demo_files.validation_csv)


def numeric_frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})


def test_the_credit_artifact_opens_as_a_decision_and_an_amount_model(
    demo_files: DemoModelFiles,
) -> None:
    artifact = open_model_file(demo_files.artifact)

    assert artifact.version == "v1"
    assert artifact.features == ("income", "credit_history_years", "debt_ratio", "zip_code")
    assert artifact.model("decision").name == "decision"
    assert artifact.model("amount").name == "amount"
    assert artifact.trained_on["rows"] == 3_000
    assert artifact.digest is not None and len(artifact.digest) == 64


def test_the_one_hot_zip_code_columns_are_traced_back_to_zip_code(
    demo_files: DemoModelFiles, applicants: pd.DataFrame
) -> None:
    split = open_model_file(demo_files.artifact).model("amount").explainable(applicants)

    assert split.sources is not None
    assert split.sources.count("zip_code") == applicants["zip_code"].nunique()
    assert sorted(set(split.sources)) == sorted(split.features)
    assert split.encode(applicants).shape == (len(applicants), len(split.sources))
    assert split.scale.kind == "log" and split.scale.name == "log-amount"
    # The explained output is the regressor's log-limit, which the pipeline turns into a limit.
    limits = open_model_file(demo_files.artifact).model("amount").estimator.predict(applicants)
    np.testing.assert_allclose(np.expm1(split.output(applicants)), limits, rtol=1e-12)


def test_the_approval_model_is_explained_in_verified_log_odds(
    demo_files: DemoModelFiles, applicants: pd.DataFrame
) -> None:
    split = open_model_file(demo_files.artifact).model("decision").explainable(applicants)

    assert split.scale.kind == "log_odds"
    assert split.scale.name == "log-odds of decision"


def test_a_bare_classifier_is_a_decision_model_and_a_bare_regressor_an_amount_model(
    tmp_path: Path,
) -> None:
    frame = numeric_frame()
    classifier = LogisticRegression().fit(frame, frame["a"] > 0)
    regressor = HistGradientBoostingRegressor(max_iter=5).fit(frame, frame["b"])
    sio.dump(classifier, tmp_path / "classifier.skops")
    sio.dump(regressor, tmp_path / "regressor.skops")

    decision = open_model_file(tmp_path / "classifier.skops")
    amount = open_model_file(tmp_path / "regressor.skops")

    assert list(decision.models) == ["decision"] and decision.features == ("a", "b")
    assert list(amount.models) == ["amount"] and amount.version is None
    with pytest.raises(ModelFileError, match="has no amount model"):
        decision.model("amount")


def test_multi_column_one_hot_encoding_and_scaling_are_traced_column_by_column() -> None:
    frame = pd.DataFrame(
        {
            "colour": ["red", "green", "blue", "red"] * 25,
            "size": ["s", "m", "l", "xl"] * 25,
            "x": np.arange(100, dtype=float),
        }
    )
    encode = ColumnTransformer(
        [
            ("categories", OneHotEncoder(drop="first"), ["colour", "size"]),
            ("x", "passthrough", ["x"]),
        ]
    )
    model = make_pipeline(encode, StandardScaler(), LinearRegression()).fit(frame, frame["x"])

    split = read_artifact(model, source="memory").model("amount").explainable(frame)

    assert split.sources == ("colour", "colour", "size", "size", "size", "x")


def test_an_encoding_that_mixes_features_cannot_be_traced() -> None:
    frame = numeric_frame()
    model = make_pipeline(PCA(n_components=2), LinearRegression()).fit(frame, frame["a"])

    split = read_artifact(model, source="memory").model("amount").explainable(frame)

    assert split.sources is None


def test_a_missing_file_is_a_model_file_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        open_model_file(tmp_path / "absent.skops")
    assert issubclass(ModelFileError, ValueError)


def test_a_corrupt_file_is_a_model_file_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.skops"
    path.write_bytes(b"PK\x03\x04 this is not a zip file")

    with pytest.raises(ModelFileError, match="not a skops file"):
        open_model_file(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({"weights": [1, 2, 3]}, "not a model artifact"),
        ([1, 2, 3], "is not a model"),
        (StandardScaler().fit(numeric_frame()), "is not a model"),
        (LinearRegression(), "is not fitted"),
    ],
    ids=["dict", "list", "transformer", "unfitted"],
)
def test_a_file_that_holds_no_usable_model_is_a_model_file_error(
    tmp_path: Path, content: object, reason: str
) -> None:
    path = tmp_path / "model.skops"
    sio.dump(content, path)

    with pytest.raises(ModelFileError, match=reason):
        open_model_file(path)


def test_a_multiclass_classifier_cannot_make_a_decision(tmp_path: Path) -> None:
    frame = numeric_frame()
    three_classes = np.digitize(frame["a"], [-0.5, 0.5])
    sio.dump(LogisticRegression().fit(frame, three_classes), tmp_path / "m.skops")

    with pytest.raises(ModelFileError, match="binary classifier"):
        open_model_file(tmp_path / "m.skops")


def test_a_model_that_does_not_know_its_columns_is_refused(tmp_path: Path) -> None:
    frame = numeric_frame()
    sio.dump(LinearRegression().fit(frame.to_numpy(), frame["a"]), tmp_path / "m.skops")

    with pytest.raises(ModelFileError, match="fit it on a pandas DataFrame"):
        open_model_file(tmp_path / "m.skops")


def test_an_artifact_part_of_the_wrong_kind_is_refused(demo_files: DemoModelFiles) -> None:
    store = ArtifactStore(demo_files.artifacts_dir)
    content = store.load(demo_files.artifact_name, store.digest(demo_files.artifact_name))
    content["decision"], content["amount"] = content["amount"], content["decision"]

    with pytest.raises(ModelFileError, match="should be a decision model"):
        read_artifact(content, source="swapped")


def test_artifacts_load_one_at_a_time_across_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent registrations each load their artifact in a thread of the API. skops
    parses array headers through ``ast``, and CPython 3.11's AST constructor keeps its
    recursion depth per interpreter, not per thread (gh-106905): two loads at once
    failed a registration with "SystemError: AST constructor recursion depth mismatch".
    Every load must therefore run alone, however many threads ask at once."""
    import threading
    import time

    store = ArtifactStore(tmp_path)
    estimator = LogisticRegression().fit(numeric_frame(), np.arange(200) % 2)
    name, sha256 = store.save({"decision": estimator}, "m", "v1.skops")
    inside, most = 0, 0
    count = threading.Lock()
    real_loads = sio.loads

    def loads(*args: object, **kwargs: object) -> object:
        nonlocal inside, most
        with count:
            inside += 1
            most = max(most, inside)
        try:
            time.sleep(0.01)  # a slow load: the others would overlap it
            return real_loads(*args, **kwargs)
        finally:
            with count:
                inside -= 1

    monkeypatch.setattr(sio, "loads", loads)
    loaded: list[object] = []
    threads = [
        threading.Thread(target=lambda: loaded.append(store.load(name, sha256))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(loaded) == 8
    assert most == 1

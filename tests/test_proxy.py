"""Known answers for the proxy scan: textbook association measures, sklearn agreement, and
planted proxies of known strength found while neutral features are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats.contingency import association
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from fairness.proxy import (
    ProxyThresholds,
    cramers_v,
    encode_feature,
    normalized_mutual_information,
    scan_proxies,
)


def test_cramers_v_bias_corrected_by_hand() -> None:
    # 2x2, n = 80: chi2 = 80 * (30*30 - 10*10)^2 / 40^4 = 20, phi2 = 0.25 (plain V = 0.5).
    # Bergsma: phi2~ = 0.25 - 1/79; r~ = k~ = 2 - 1/79; V~ = sqrt(phi2~ / (r~ - 1)) = 0.490291.
    table = [[30, 10], [10, 30]]
    assert association(np.array(table), method="cramer") == pytest.approx(0.5)
    assert cramers_v(table) == pytest.approx(0.490291, abs=1e-6)


def test_cramers_v_correction_on_a_larger_table() -> None:
    table = np.array([[25, 10, 15], [5, 30, 15], [10, 10, 30]])
    n, (r, k) = table.sum(), table.shape
    phi2 = association(table, method="cramer") ** 2 * min(r - 1, k - 1)
    corrected = max(0.0, phi2 - (r - 1) * (k - 1) / (n - 1))
    denominator = min(r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)) - 1
    assert cramers_v(table) == pytest.approx(np.sqrt(corrected / denominator))
    assert cramers_v(table) < association(table, method="cramer")


def test_cramers_v_extremes() -> None:
    assert cramers_v([[10, 20], [20, 40]]) == 0.0  # independent
    assert cramers_v([[50, 0], [0, 50]]) == pytest.approx(1.0)  # perfect
    assert cramers_v([[5, 7]]) == 0.0  # one row: nothing to associate
    assert cramers_v([[5, 0], [0, 0], [3, 0]]) == 0.0  # empty rows and columns dropped


def test_nmi_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    attribute = rng.integers(0, 3, 5_000)
    feature = np.where(rng.random(5_000) < 0.4, attribute * 2, rng.integers(0, 7, 5_000))
    table = pd.crosstab(feature, attribute).to_numpy()
    assert normalized_mutual_information(table) == pytest.approx(
        normalized_mutual_info_score(attribute, feature)
    )
    assert normalized_mutual_information([[10, 0], [0, 20]]) == pytest.approx(1.0)
    assert normalized_mutual_information([[10, 20]]) == 0.0
    assert normalized_mutual_information([[7]]) == normalized_mutual_info_score([0] * 7, [1] * 7)


def test_numbers_are_cut_into_equal_count_quantile_bins() -> None:
    encoded = encode_feature(pd.Series(np.arange(1_000, dtype=float)), bins=10)
    assert encoded.kind == "numeric"
    assert encoded.levels == 10
    assert np.bincount(encoded.codes).tolist() == [100] * 10
    assert (np.diff(encoded.codes) >= 0).all()  # bins follow the order of the values


def test_missing_values_are_a_level_and_ties_merge_bins() -> None:
    with_gaps = encode_feature(pd.Series([1.0, 2.0, None, 4.0, None]), bins=2)
    assert with_gaps.levels == 3
    assert with_gaps.codes[2] == with_gaps.codes[4] == 2
    binary = encode_feature(pd.Series([0, 1] * 50), bins=10)
    assert binary.levels == 2
    category = encode_feature(pd.Series(["b", "a", None, "b"]), bins=10)
    assert category.kind == "categorical"
    assert category.codes.tolist() == [1, 0, 2, 1]
    flags = encode_feature(pd.Series([True, False, True]), bins=10)
    assert flags.kind == "categorical"


def planted(n: int, seed: int) -> pd.DataFrame:
    """A binary group, a categorical proxy that agrees with it 90% of the time, a numeric
    proxy shifted by 1.5 standard deviations, and two neutral features."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n)
    agrees = rng.random(n) < 0.9
    return pd.DataFrame(
        {
            "group": np.where(group == 1, "B", "A"),
            "proxy": np.where(agrees == (group == 1), "p_B", "p_A"),
            "shifted": rng.normal(1.5 * group, 1.0),
            "neutral_number": rng.normal(size=n),
            "neutral_category": rng.choice(["x", "y", "z"], n),
        }
    )


FEATURES = ["proxy", "shifted", "neutral_number", "neutral_category"]


def test_a_planted_proxy_is_flagged_at_its_known_strength() -> None:
    scan = scan_proxies(planted(20_000, 2), ["group"], FEATURES)
    (group,) = scan.attributes
    by_name = {f.feature: f for f in group.features}
    proxy = by_name["proxy"]
    # Two scores; 90% agreement: AUC = 0.9*0.9 + 0.5*(2*0.9*0.1) = 0.90, phi = 0.8,
    # NMI = (ln 2 - H(0.1)) / ln 2 = 0.531.
    assert proxy.auc == pytest.approx(0.90, abs=0.01)
    assert proxy.cramers_v == pytest.approx(0.80, abs=0.015)
    assert proxy.nmi == pytest.approx(0.531, abs=0.02)
    # Normal shifted by 1.5 sd: AUC = Phi(1.5 / sqrt 2) = 0.856, a little less once binned.
    assert by_name["shifted"].auc == pytest.approx(0.85, abs=0.015)
    assert [f.feature for f in group.features[:2]] == ["proxy", "shifted"]
    assert group.suspected == ["proxy", "shifted"]
    assert scan.suspected_proxies == ["proxy", "shifted"]
    for neutral in ("neutral_number", "neutral_category"):
        assert not by_name[neutral].suspected
        assert by_name[neutral].auc is not None and by_name[neutral].auc < 0.53
        assert by_name[neutral].nmi < 0.005
    assert group.all_features_auc is not None and group.all_features_auc > proxy.auc


def test_thresholds_are_parameters() -> None:
    frame = planted(5_000, 3)
    strict = scan_proxies(frame, ["group"], FEATURES, thresholds=ProxyThresholds(nmi=0.6, auc=0.88))
    assert strict.suspected_proxies == ["proxy"]
    assert ProxyThresholds() == ProxyThresholds(nmi=0.10, auc=0.70)


def test_nothing_predicts_the_attribute() -> None:
    rng = np.random.default_rng(4)
    n = 20_000
    frame = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(6)})
    frame["c"] = rng.choice(list("abcdefgh"), n)
    frame["group"] = rng.choice(["A", "B"], n)
    (group,) = scan_proxies(frame, ["group"], [c for c in frame if c != "group"]).attributes
    assert group.all_features_auc == pytest.approx(0.5, abs=0.02)
    assert group.suspected == []
    assert group.all_features_sample_rows == n


@pytest.mark.parametrize("classes", [2, 3])
def test_single_feature_auc_is_the_cross_validated_one_hot_logistic_regression(
    classes: int,
) -> None:
    rng = np.random.default_rng(5)
    n = 6_000
    attribute = rng.integers(0, classes, n)
    feature = np.where(rng.random(n) < 0.5, attribute, rng.integers(0, 6, n))
    frame = pd.DataFrame({"a": attribute.astype(str), "f": feature.astype(str)})
    (scan,) = scan_proxies(frame, ["a"], ["f"], seed=7).attributes

    folds = StratifiedKFold(5, shuffle=True, random_state=7)
    model = make_pipeline(OneHotEncoder(), LogisticRegression(C=1e6, max_iter=1_000))
    probabilities = cross_val_predict(
        model, frame[["f"]], attribute, cv=folds, method="predict_proba"
    )
    expected = (
        roc_auc_score(attribute, probabilities[:, 1])
        if classes == 2
        else roc_auc_score(attribute, probabilities, multi_class="ovr")
    )
    assert scan.features[0].auc == pytest.approx(expected, abs=1e-3)


def test_small_classes_are_left_out_of_the_auc_but_not_the_association() -> None:
    frame = planted(3_000, 6)
    frame.loc[:9, "group"] = "C"
    frame.loc[10:14, "group"] = None
    (group,) = scan_proxies(frame, ["group"], FEATURES, min_class_size=30).attributes
    assert group.classes == ["A", "B", "C"]
    assert group.auc_classes == ["A", "B"]
    assert group.rows == 2_995
    assert group.auc_rows == 2_985


def test_large_data_is_sampled_for_the_all_features_model_only() -> None:
    frame = planted(30_000, 8)
    frame.loc[:39, "group"] = "C"  # a small class keeps at least min_class_size rows
    (group,) = scan_proxies(frame, ["group"], FEATURES, sample_size=3_000).attributes
    assert group.auc_rows == 30_000
    assert 3_000 <= group.all_features_sample_rows <= 3_030


def test_an_attribute_with_one_value_has_nothing_to_predict() -> None:
    frame = planted(200, 9).assign(group="A")
    (group,) = scan_proxies(frame, ["group"], FEATURES).attributes
    assert group.features == []
    assert group.all_features_auc is None


@pytest.mark.parametrize(
    ("protected", "features", "options", "message"),
    [
        ([], FEATURES, {}, "at least one protected"),
        (["group"], ["nope"], {}, "lacks column"),
        (["group"], ["group", "proxy"], {}, "both protected and a candidate"),
        (["group"], FEATURES, {"min_class_size": 3}, "min_class_size"),
        (["group"], FEATURES, {"bins": 1}, "at least 2"),
    ],
)
def test_bad_arguments(
    protected: list[str], features: list[str], options: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        scan_proxies(planted(100, 10), protected, features, **options)

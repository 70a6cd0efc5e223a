"""Known answers for the group outcome maths, computed by hand, and agreement with fairlearn."""

from __future__ import annotations

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    selection_rate,
)

from fairness.outcomes import (
    combine_strata,
    conditional_disparity,
    disparate_impact_ratio,
    group_mean_ratio,
    selection_rates,
)

# Group A: 2 of 4 approved (0.5); group B: 1 of 4 approved (0.25).
APPROVED = [True, True, False, False, True, False, False, False]
GROUPS = ["A", "A", "A", "A", "B", "B", "B", "B"]


def test_selection_rates_by_hand() -> None:
    assert selection_rates(APPROVED, GROUPS) == {"A": 0.5, "B": 0.25}


def test_disparate_impact_ratio_by_hand() -> None:
    assert disparate_impact_ratio(APPROVED, GROUPS) == pytest.approx(0.25 / 0.5)


def test_binary_metrics_agree_with_fairlearn() -> None:
    rng = np.random.default_rng(5)
    groups = rng.choice(["A", "B", "C"], size=500)
    approved = rng.random(500) < np.where(groups == "A", 0.6, 0.4)

    frame = MetricFrame(
        metrics=selection_rate, y_true=approved, y_pred=approved, sensitive_features=groups
    )
    assert selection_rates(approved, groups) == pytest.approx(frame.by_group.to_dict())
    assert disparate_impact_ratio(approved, groups) == pytest.approx(
        demographic_parity_ratio(approved, approved, sensitive_features=groups)
    )
    rates = selection_rates(approved, groups)
    assert max(rates.values()) - min(rates.values()) == pytest.approx(
        demographic_parity_difference(approved, approved, sensitive_features=groups)
    )


def test_nobody_approved_is_parity_not_an_undefined_ratio() -> None:
    assert disparate_impact_ratio([False, False, False], ["A", "B", "B"]) == 1.0


def test_binary_metrics_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        selection_rates([True, False], ["A"])
    with pytest.raises(ValueError, match="no decisions"):
        disparate_impact_ratio([], [])
    with pytest.raises(ValueError, match="0/1"):
        selection_rates([2, 0], ["A", "B"])


def test_group_mean_ratio_by_hand() -> None:
    # A: mean(100, 300) = 200; B: mean(100, 50) = 75; ratio 75 / 200.
    assert group_mean_ratio([100, 300, 100, 50], ["A", "A", "B", "B"]) == pytest.approx(0.375)


def test_group_mean_ratio_agrees_with_fairlearn() -> None:
    rng = np.random.default_rng(9)
    groups = rng.choice(["A", "B"], size=300)
    amounts = rng.gamma(2.0, 1_000.0, size=300)
    frame = MetricFrame(
        metrics=lambda _t, p: float(np.mean(p)),
        y_true=amounts,
        y_pred=amounts,
        sensitive_features=groups,
    )
    assert group_mean_ratio(amounts, groups) == pytest.approx(frame.ratio())


def test_group_mean_ratio_refuses_negative_amounts() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        group_mean_ratio([-1.0, 2.0], ["A", "B"])


def test_conditional_disparity_by_hand() -> None:
    # s1: A mean 100, B mean 80  -> B 20% lower, 4 rows
    # s2: A mean 200, B mean 100 -> B 50% lower, 8 rows
    # s3: A has a single row     -> skipped at min_count=2
    # Weighted gap of B: (4 * 0.20 + 8 * 0.50) / 12 = 0.40.
    amounts = [100, 100, 80, 80] + [200, 200] + [100] * 6 + [500, 10, 10]
    groups = ["A", "A", "B", "B"] + ["A", "A"] + ["B"] * 6 + ["A", "B", "B"]
    strata = ["s1"] * 4 + ["s2"] * 8 + ["s3"] * 3

    result = conditional_disparity(amounts, groups, strata, min_count=2)

    assert result.relative_gap == pytest.approx(0.40)
    assert result.worst_group == "B"
    assert result.group_gaps == pytest.approx({"A": 0.0, "B": 0.40})
    assert [s.stratum for s in result.strata] == ["s1", "s2"]
    assert result.skipped_strata == ["s3"]
    assert result.rows_used == 12
    s2 = result.strata[1]
    assert s2.group_counts == {"A": 2, "B": 6}
    assert s2.group_means == {"A": 200.0, "B": 100.0}
    assert s2.best_group == "A"


def test_conditional_disparity_sees_through_simpsons_paradox() -> None:
    # Identical amounts within each stratum; B is simply concentrated in the lower one.
    amounts = [100] * 10 + [300] * 10
    groups = ["A"] * 2 + ["B"] * 8 + ["A"] * 8 + ["B"] * 2
    strata = ["low"] * 10 + ["high"] * 10

    assert group_mean_ratio(amounts, groups) == pytest.approx(140 / 260)
    result = conditional_disparity(amounts, groups, strata, min_count=2)
    assert result.relative_gap == pytest.approx(0.0)
    assert result.worst_group is None  # nobody is behind, so nobody is "worst off"


def test_conditional_disparity_when_the_best_off_group_changes_by_stratum() -> None:
    # s1 (4 rows): A 100, B 80 -> B 0.2 behind; s2 (6 rows): A 50, B 100 -> A 0.5 behind.
    amounts = [100, 100, 80, 80, *[50] * 3, *[100] * 3]
    groups = ["A", "A", "B", "B", *["A"] * 3, *["B"] * 3]
    strata = ["s1"] * 4 + ["s2"] * 6

    result = conditional_disparity(amounts, groups, strata, min_count=2)

    assert result.group_gaps == pytest.approx({"A": 6 * 0.5 / 10, "B": 4 * 0.2 / 10})
    assert result.worst_group == "A"
    assert result.relative_gap == pytest.approx(0.3)


def test_conditional_disparity_claims_nothing_without_enough_rows() -> None:
    result = conditional_disparity([1, 2, 3], ["A", "B", "B"], ["s", "s", "s"], min_count=2)
    assert result.relative_gap is None
    assert result.worst_group is None
    assert result.skipped_strata == ["s"]
    assert result.rows_used == 0


def test_conditional_disparity_agrees_with_fairlearn_per_stratum() -> None:
    rng = np.random.default_rng(3)
    n = 2_000
    groups = rng.choice(["A", "B"], size=n)
    strata = rng.choice(["x", "y", "z"], size=n)
    amounts = rng.gamma(2.0, 500.0, size=n) * np.where(groups == "B", 0.7, 1.0)

    result = conditional_disparity(amounts, groups, strata)

    for stratum in result.strata:
        rows = strata == stratum.stratum
        frame = MetricFrame(
            metrics=lambda _t, p: float(np.mean(p)),
            y_true=amounts[rows],
            y_pred=amounts[rows],
            sensitive_features=groups[rows],
        )
        assert stratum.group_means == pytest.approx(frame.by_group.to_dict())
        assert stratum.relative_gaps["B"] == pytest.approx(1 - frame.ratio())
    assert result.relative_gap == pytest.approx(0.3, abs=0.05)
    assert result.worst_group == "B"


def test_conditional_disparity_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        conditional_disparity([1, 2], ["A", "B"], ["s"])
    with pytest.raises(ValueError, match="min_count"):
        conditional_disparity([1], ["A"], ["s"], min_count=0)
    with pytest.raises(ValueError, match="finite"):
        conditional_disparity([float("nan")], ["A"], ["s"])


def test_combine_strata_crosses_labellings() -> None:
    assert combine_strata(["<30k", "30-60k"], ["<2y", "10y+"]) == ["<30k x <2y", "30-60k x 10y+"]
    with pytest.raises(ValueError, match="same length"):
        combine_strata(["a"], ["b", "c"])

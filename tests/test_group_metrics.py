"""Group metrics: fairlearn's point estimates, honest intervals, and small groups left out."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from fairness.group_metrics import (
    FairnessReport,
    Status,
    conditional_disparity_interval,
    intersection_labels,
    mean_ratio_interval,
    measure_fairness,
    rate_gap_interval,
    rate_ratio_interval,
)
from fairness.intervals import newcombe_interval, ratio_interval
from fairness.outcomes import conditional_disparity, group_mean_ratio

SIMULATIONS = 2_000


def coverage_floor(confidence: float, simulations: int) -> float:
    return confidence - 3 * math.sqrt(confidence * (1 - confidence) / simulations)


def population(n: int, seed: int, *, b_share: float = 0.4) -> pd.DataFrame:
    """Applicants of groups A/B and sexes F/M, with B approved less and given less."""
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n) < b_share, "B", "A")
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    stratum = rng.choice(["low", "mid", "high"], n)
    label = rng.random(n) < 0.5
    approve_odds = np.where(label, 0.8, 0.3) - np.where(group == "B", 0.1, 0.0)
    approved = rng.random(n) < approve_odds
    base = pd.Series(stratum).map({"low": 1_000.0, "mid": 3_000.0, "high": 8_000.0}).to_numpy()
    amount = base * rng.lognormal(0.0, 0.3, n) * np.where(group == "B", 0.8, 1.0)
    return pd.DataFrame(
        {
            "group": group,
            "sex": sex,
            "stratum": stratum,
            "label": label,
            "approved": approved,
            "amount": amount,
        }
    )


def measure(frame: pd.DataFrame, **overrides: object) -> FairnessReport:
    arguments: dict[str, object] = {
        "decided": frame["approved"],
        "labels": frame["label"],
        "amounts": frame["amount"],
        "strata": frame["stratum"],
        "bootstrap_samples": 200,
        "rng": np.random.default_rng(0),
    }
    arguments.update(overrides)
    return measure_fairness({"group": frame["group"], "sex": frame["sex"]}, **arguments)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return population(4_000, 1)


@pytest.fixture(scope="module")
def report(frame: pd.DataFrame) -> FairnessReport:
    return measure(frame)


def test_every_attribute_and_their_intersection_is_a_slicing(report: FairnessReport) -> None:
    assert [s.name for s in report.slicings] == ["group", "sex", "group|sex"]
    assert [g.group for g in report.slicing("group|sex").groups] == ["A|F", "A|M", "B|F", "B|M"]
    assert list(intersection_labels([["B", "A"], ["F", "M"]])) == ["B|F", "A|M"]


@pytest.mark.parametrize("slicing", ["group", "sex", "group|sex"])
def test_point_estimates_match_fairlearn(
    frame: pd.DataFrame, report: FairnessReport, slicing: str
) -> None:
    measured = report.slicing(slicing)
    sensitive = frame[slicing.split("|")]
    y_true, y_pred = frame["label"], frame["approved"]
    by_group = MetricFrame(
        metrics={
            "selection": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=sensitive,
    ).by_group
    for group, row in zip(measured.groups, by_group.itertuples(), strict=True):
        assert group.group == "|".join(row.Index if isinstance(row.Index, tuple) else [row.Index])
        assert group.selection_rate is not None and group.true_positive_rate is not None
        assert group.false_positive_rate is not None
        assert group.selection_rate.estimate == pytest.approx(row.selection)
        assert group.true_positive_rate.estimate == pytest.approx(row.tpr)
        assert group.false_positive_rate.estimate == pytest.approx(row.fpr)

    assert measured.disparate_impact_ratio is not None
    assert measured.demographic_parity_difference is not None
    assert measured.equalized_odds_difference is not None
    assert measured.disparate_impact_ratio.estimate == pytest.approx(
        demographic_parity_ratio(y_true, y_pred, sensitive_features=sensitive)
    )
    assert measured.demographic_parity_difference.estimate == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=sensitive)
    )
    assert measured.equalized_odds_difference.estimate == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=sensitive)
    )


def test_amount_estimates_match_the_outcome_measures(
    frame: pd.DataFrame, report: FairnessReport
) -> None:
    approved = frame[frame["approved"]]
    measured = report.slicing("group")
    assert measured.group_mean_ratio is not None
    assert measured.conditional_amount_disparity is not None
    assert measured.group_mean_ratio.estimate == pytest.approx(
        group_mean_ratio(approved["amount"], approved["group"])
    )
    expected = conditional_disparity(approved["amount"], approved["group"], approved["stratum"])
    assert measured.conditional_amount_disparity.estimate == pytest.approx(expected.relative_gap)
    assert measured.conditional_detail == expected
    assert measured.conditional_amount_disparity.extremes == ["B"]


def test_counts_come_with_the_rates(frame: pd.DataFrame, report: FairnessReport) -> None:
    b = report.slicing("group").groups[1]
    rows = frame[frame["group"] == "B"]
    assert b.size == len(rows)
    assert b.selection_rate is not None and b.true_positive_rate is not None
    assert b.selection_rate.successes == rows["approved"].sum()
    assert b.true_positive_rate.trials == rows["label"].sum()
    assert b.amount_rows == rows["approved"].sum()
    assert b.mean_amount == pytest.approx(rows.loc[rows["approved"], "amount"].mean())


def test_the_family_of_intervals_sets_the_level(report: FairnessReport) -> None:
    # group and sex: 1 pair each; group|sex: 6 pairs. Per pair: DI, DP difference, TPR and
    # FPR gaps, mean ratio (5); per slicing one conditional disparity.
    assert report.comparisons == 5 * (1 + 1 + 6) + 3
    assert report.corrected_alpha == pytest.approx(0.05 / report.comparisons)
    every = [
        d.interval
        for s in report.slicings
        for d in (s.disparate_impact_ratio, s.equalized_odds_difference, s.group_mean_ratio)
        if d is not None and d.interval is not None
    ]
    assert every
    assert all(i.confidence == pytest.approx(1 - report.corrected_alpha) for i in every)
    extra = measure(population(4_000, 1), extra_comparisons=1)
    assert extra.comparisons == report.comparisons + 1


def test_intervals_contain_their_estimates(report: FairnessReport) -> None:
    for slicing in report.slicings:
        for name in (
            "disparate_impact_ratio",
            "demographic_parity_difference",
            "equalized_odds_difference",
            "group_mean_ratio",
            "conditional_amount_disparity",
        ):
            disparity = getattr(slicing, name)
            assert disparity.status is Status.MEASURED
            assert disparity.interval.lower <= disparity.estimate <= disparity.interval.upper


def test_two_groups_reduce_to_newcombe_and_mover_r() -> None:
    successes, trials = {"A": 50, "B": 25}, {"A": 80, "B": 70}
    gap = rate_gap_interval(successes, trials, alpha=0.05)
    pair = newcombe_interval(50, 80, 25, 70)
    assert pair.lower > 0
    assert (gap.lower, gap.upper) == pytest.approx((pair.lower, pair.upper))
    ratio = rate_ratio_interval(successes, trials, alpha=0.05)
    pair_ratio = ratio_interval(25, 70, 50, 80)
    assert pair_ratio.upper < 1
    assert ratio.estimate == pytest.approx((25 / 70) / (50 / 80))
    assert (ratio.lower, ratio.upper) == pytest.approx((pair_ratio.lower, pair_ratio.upper))


def test_a_gap_straddling_zero_has_lower_bound_zero_and_ratio_upper_bound_one() -> None:
    successes, trials = {"A": 20, "B": 21}, {"A": 40, "B": 40}
    assert rate_gap_interval(successes, trials, alpha=0.05).lower == 0.0
    assert rate_ratio_interval(successes, trials, alpha=0.05).upper == 1.0


def test_a_small_group_is_inconclusive_and_left_out() -> None:
    frame = population(3_000, 2)
    frame.loc[frame.index[:12], "group"] = "C"
    report = measure(frame, min_group_size=30)
    slicing = report.slicing("group")
    small = next(g for g in slicing.groups if g.group == "C")
    assert small.status is Status.INCONCLUSIVE
    assert small.selection_rate is not None
    assert small.selection_rate.status is Status.INCONCLUSIVE
    assert small.selection_rate.interval is not None  # still reported, never judged
    for disparity in (
        slicing.disparate_impact_ratio,
        slicing.demographic_parity_difference,
        slicing.equalized_odds_difference,
        slicing.group_mean_ratio,
        slicing.conditional_amount_disparity,
    ):
        assert disparity is not None
        assert disparity.status is Status.MEASURED
        assert disparity.groups == ["A", "B"]
        assert disparity.excluded_groups and disparity.excluded_groups[0].startswith("C ")
        assert "not judged: C" in disparity.note
    kept = frame[frame["group"] != "C"]
    assert slicing.disparate_impact_ratio is not None
    assert slicing.disparate_impact_ratio.estimate == pytest.approx(
        demographic_parity_ratio(kept["label"], kept["approved"], sensitive_features=kept["group"])
    )


def test_fewer_than_two_judged_groups_is_inconclusive() -> None:
    frame = population(400, 3, b_share=0.05)
    report = measure(frame, min_group_size=100)
    disparity = report.slicing("group").disparate_impact_ratio
    assert disparity is not None
    assert disparity.status is Status.INCONCLUSIVE
    assert disparity.estimate is None and disparity.interval is None
    assert "fewer than two groups" in disparity.note


def test_without_labels_or_amounts_those_metrics_are_absent(frame: pd.DataFrame) -> None:
    report = measure(frame, labels=None, amounts=None, strata=None)
    slicing = report.slicing("group")
    assert slicing.equalized_odds_difference is None
    assert slicing.group_mean_ratio is None and slicing.conditional_amount_disparity is None
    assert slicing.groups[0].true_positive_rate is None
    assert report.comparisons == 2 * (1 + 1 + 6)


def test_amounts_alone_use_every_row(frame: pd.DataFrame) -> None:
    report = measure(frame, decided=None, labels=None)
    assert report.amount_rows == len(frame)
    assert report.slicing("group").disparate_impact_ratio is None
    assert report.slicing("group").group_mean_ratio is not None


def test_bad_inputs_are_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="same length"):
        measure_fairness({"g": ["A", "B"], "s": ["F"]}, decided=[1, 0], rng=np.random.default_rng())
    with pytest.raises(ValueError, match="nothing to measure"):
        measure_fairness({"g": ["A", "B"]}, rng=np.random.default_rng())
    with pytest.raises(ValueError, match="need a decision"):
        measure_fairness(
            {"g": ["A", "B"]}, labels=[1, 0], amounts=[1, 2], rng=np.random.default_rng()
        )
    with pytest.raises(ValueError, match="only booleans"):
        measure_fairness({"g": ["A", "B"]}, decided=[2, 0], rng=np.random.default_rng())
    with pytest.raises(ValueError, match="must not contain"):
        measure_fairness({"g": ["A|B", "B"]}, decided=[1, 0], rng=np.random.default_rng())
    with pytest.raises(ValueError, match="non-negative"):
        measure_fairness({"g": ["A", "B"]}, amounts=[-1, 0], rng=np.random.default_rng())


def test_report_survives_json(report: FairnessReport) -> None:
    assert FairnessReport.model_validate_json(report.model_dump_json()) == report


def test_rate_aggregates_cover_with_a_group_of_25() -> None:
    """DI ratio, DP difference and equalized-odds difference for a group of 25 against
    one of 400, at the stated 95%, over 2,000 simulated samples."""
    rng = np.random.default_rng(31)
    sizes = {"small": 25, "large": 400}
    selection = {"small": 0.32, "large": 0.5}
    tpr = {"small": 0.6, "large": 0.75}
    fpr = {"small": 0.2, "large": 0.3}
    truth_di = selection["small"] / selection["large"]
    truth_dp = selection["large"] - selection["small"]
    truth_eo = max(tpr["large"] - tpr["small"], fpr["large"] - fpr["small"])
    covered = {"di": 0, "dp": 0, "eo": 0}
    for _ in range(SIMULATIONS):
        approvals = {g: int(rng.binomial(sizes[g], selection[g])) for g in sizes}
        positives = {g: int(rng.binomial(sizes[g], 0.5)) for g in sizes}
        negatives = {g: sizes[g] - positives[g] for g in sizes}
        true_pos = {g: int(rng.binomial(positives[g], tpr[g])) for g in sizes}
        false_pos = {g: int(rng.binomial(negatives[g], fpr[g])) for g in sizes}
        covered["di"] += rate_ratio_interval(approvals, sizes, alpha=0.05).contains(truth_di)
        covered["dp"] += rate_gap_interval(approvals, sizes, alpha=0.05).contains(truth_dp)
        tpr_gap = rate_gap_interval(true_pos, positives, alpha=0.05)
        fpr_gap = rate_gap_interval(false_pos, negatives, alpha=0.05)
        lower = max(tpr_gap.lower, fpr_gap.lower)
        upper = max(tpr_gap.upper, fpr_gap.upper)
        covered["eo"] += lower <= truth_eo <= upper
    for name, hits in covered.items():
        assert hits / SIMULATIONS >= coverage_floor(0.95, SIMULATIONS), name


def test_amount_intervals_cover_a_true_20_percent_gap() -> None:
    """Group mean ratio and conditional disparity (true values 0.8 and 0.2): a group of
    120 against 300, each applicant in one of three strata at random, amounts skewed like
    credit limits. 300 simulations, each a full bootstrap, so the tolerance is wider."""
    rng = np.random.default_rng(41)
    simulations = 300
    base = np.array([1_000.0, 3_000.0, 8_000.0])
    names = np.array(["low", "mid", "high"])
    groups = np.array(["A"] * 300 + ["B"] * 120)
    b_factor = np.where(groups == "B", 0.8, 1.0)
    mean_ratio_hits = conditional_hits = 0
    for _ in range(simulations):
        stratum = rng.integers(0, 3, len(groups))
        amounts = base[stratum] * b_factor * rng.lognormal(0.0, 0.3, len(groups))
        ratio = mean_ratio_interval(amounts, groups, alpha=0.05, samples=200, rng=rng)
        mean_ratio_hits += ratio.contains(0.8)
        _, gap = conditional_disparity_interval(
            amounts, groups, names[stratum], min_count=30, alpha=0.05, samples=200, rng=rng
        )
        assert gap is not None
        conditional_hits += gap.contains(0.2)
    assert mean_ratio_hits / simulations >= coverage_floor(0.95, simulations)
    assert conditional_hits / simulations >= coverage_floor(0.95, simulations)


def test_a_group_with_nothing_has_an_exact_mean_ratio() -> None:
    amounts = np.r_[np.zeros(40), np.full(40, 100.0)]
    groups = np.array(["none"] * 40 + ["some"] * 40)
    interval = mean_ratio_interval(
        amounts, groups, alpha=0.05, samples=100, rng=np.random.default_rng(0)
    )
    assert (interval.estimate, interval.lower, interval.upper) == (0.0, 0.0, 0.0)

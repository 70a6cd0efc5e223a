"""Intervals: known answers from the literature, and coverage of the truth on simulated data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from fairness.intervals import (
    FloatArray,
    Interval,
    corrected_alpha,
    newcombe_interval,
    ratio_interval,
    stratified_bootstrap,
    stratified_bootstrap_many,
    wilson_interval,
)

SIMULATIONS = 2_000


def coverage_floor(confidence: float, simulations: int = SIMULATIONS) -> float:
    """The stated rate minus three binomial standard errors of a coverage estimate."""
    return confidence - 3 * math.sqrt(confidence * (1 - confidence) / simulations)


# Newcombe (1998a), Statistics in Medicine 17:857-872, Table I, method 3 (score).
@pytest.mark.parametrize(
    ("successes", "trials", "lower", "upper"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_newcombe_1998a(
    successes: int, trials: int, lower: float, upper: float
) -> None:
    interval = wilson_interval(successes, trials)
    assert interval.lower == pytest.approx(lower, abs=5e-5)
    assert interval.upper == pytest.approx(upper, abs=5e-5)
    assert interval.estimate == successes / trials
    assert interval.confidence == pytest.approx(0.95)


# Newcombe (1998b), Statistics in Medicine 17:873-890, Table II, method 10.
@pytest.mark.parametrize(
    ("counts", "lower", "upper"),
    [
        ((56, 70, 48, 80), 0.0524, 0.3339),
        ((9, 10, 3, 10), 0.1705, 0.8090),
        ((6, 7, 2, 7), 0.0582, 0.8062),
        ((5, 56, 0, 29), -0.0381, 0.1926),
        ((0, 10, 0, 20), -0.1611, 0.2775),
        ((0, 10, 0, 10), -0.2775, 0.2775),
        ((10, 10, 0, 20), 0.6791, 1.0),
        ((10, 10, 0, 10), 0.6075, 1.0),
    ],
)
def test_newcombe_matches_newcombe_1998b(
    counts: tuple[int, int, int, int], lower: float, upper: float
) -> None:
    interval = newcombe_interval(*counts)
    assert interval.lower == pytest.approx(lower, abs=5e-5)
    assert interval.upper == pytest.approx(upper, abs=5e-5)
    assert interval.estimate == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])


def mover_difference_limits(theta: float, first: Interval, second: Interval) -> tuple[float, float]:
    """MOVER limits of p1 - theta * p2, straight from Zou & Donner's definition."""
    p1, p2 = first.estimate, second.estimate
    d = p1 - theta * p2
    lower = d - math.hypot(p1 - first.lower, theta * (second.upper - p2))
    upper = d + math.hypot(first.upper - p1, theta * (p2 - second.lower))
    return lower, upper


@pytest.mark.parametrize(
    "counts", [(56, 70, 48, 80), (3, 25, 90, 200), (24, 25, 120, 200), (0, 25, 40, 200)]
)
def test_ratio_limits_are_where_the_mover_difference_interval_reaches_zero(
    counts: tuple[int, int, int, int],
) -> None:
    first, second = wilson_interval(*counts[:2]), wilson_interval(*counts[2:])
    interval = ratio_interval(*counts)
    if interval.lower > 0:
        root = brentq(lambda t: mover_difference_limits(t, first, second)[0], 1e-9, 1e3)
        assert interval.lower == pytest.approx(root, rel=1e-9)
    else:
        assert counts[0] == 0  # only no successes in the numerator group reach zero
    root = brentq(lambda t: mover_difference_limits(t, first, second)[1], 1e-9, 1e3)
    assert interval.upper == pytest.approx(root, rel=1e-9)


def test_ratio_agrees_with_katz_for_large_counts() -> None:
    interval = ratio_interval(4_000, 10_000, 5_000, 10_000)
    spread = math.sqrt((1 - 0.4) / 4_000 + (1 - 0.5) / 5_000)
    assert interval.estimate == pytest.approx(0.8)
    assert interval.lower == pytest.approx(0.8 * math.exp(-1.959964 * spread), rel=2e-3)
    assert interval.upper == pytest.approx(0.8 * math.exp(1.959964 * spread), rel=2e-3)


def test_ratio_without_successes() -> None:
    nothing_known = ratio_interval(0, 10, 0, 10)
    assert (nothing_known.estimate, nothing_known.lower, nothing_known.upper) == (
        1.0,
        0.0,
        math.inf,
    )
    unbounded = ratio_interval(5, 20, 0, 10)
    assert unbounded.estimate == math.inf
    assert unbounded.upper == math.inf
    assert 0 < unbounded.lower < 1
    zero = ratio_interval(0, 25, 40, 200)
    assert zero.estimate == zero.lower == 0.0
    assert 0 < zero.upper < 1


def test_infinite_limits_survive_json() -> None:
    interval = ratio_interval(0, 10, 0, 10)
    assert Interval.model_validate_json(interval.model_dump_json()) == interval


def test_corrected_alpha_is_bonferroni() -> None:
    assert corrected_alpha(0.05, 1) == 0.05
    assert corrected_alpha(0.05, 20) == pytest.approx(0.0025)
    with pytest.raises(ValueError, match="at least 1"):
        corrected_alpha(0.05, 0)
    with pytest.raises(ValueError, match="alpha"):
        corrected_alpha(1.5, 3)


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one trial"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="alpha"):
        newcombe_interval(1, 2, 1, 2, alpha=0)
    with pytest.raises(ValueError, match="lower <= estimate <= upper"):
        Interval(estimate=0.5, lower=0.6, upper=0.7, confidence=0.95, method="made up")


def test_wilson_covers_on_average_for_a_group_of_25() -> None:
    """Wilson's coverage at fixed p oscillates at small n (down to about 92% at p = 0.3,
    n = 25); averaged over p, the criterion it is chosen on, it holds the stated rate."""
    rng = np.random.default_rng(11)
    truths = rng.uniform(0.05, 0.95, SIMULATIONS)
    successes = rng.binomial(25, truths)
    covered = [
        wilson_interval(int(k), 25).contains(p) for k, p in zip(successes, truths, strict=True)
    ]
    assert np.mean(covered) >= coverage_floor(0.95)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_newcombe_and_ratio_cover_with_a_group_of_25(alpha: float) -> None:
    rng = np.random.default_rng(12)
    p_small, p_large = 0.3, 0.5
    small = rng.binomial(25, p_small, SIMULATIONS)
    large = rng.binomial(200, p_large, SIMULATIONS)
    difference = ratio = 0
    for k1, k2 in zip(small, large, strict=True):
        difference += newcombe_interval(int(k1), 25, int(k2), 200, alpha=alpha).contains(
            p_small - p_large
        )
        ratio += ratio_interval(int(k1), 25, int(k2), 200, alpha=alpha).contains(p_small / p_large)
    assert difference / SIMULATIONS >= coverage_floor(1 - alpha)
    assert ratio / SIMULATIONS >= coverage_floor(1 - alpha)


def test_bootstrap_never_moves_a_row_out_of_its_group() -> None:
    groups = np.array(["small"] * 3 + ["large"] * 97)
    values = np.where(groups == "small", 1.0, 0.0)
    seen: list[FloatArray] = []

    def small_share(batch: FloatArray) -> FloatArray:
        seen.append(batch)
        return np.asarray(batch[:, :3].mean(axis=1) - batch[:, 3:].mean(axis=1))

    interval = stratified_bootstrap(
        small_share, values, groups, samples=200, alpha=0.05, rng=np.random.default_rng(0)
    )
    assert (interval.lower, interval.estimate, interval.upper) == (1.0, 1.0, 1.0)
    assert all((batch[:, :3] == 1.0).all() and (batch[:, 3:] == 0.0).all() for batch in seen)


def test_bootstrap_resamples_within_strata_too() -> None:
    groups = np.array(["A", "A", "A", "A", "B", "B", "B", "B"])
    strata = np.array(["x", "x", "y", "y", "x", "x", "y", "y"])
    values = np.array([1.0, 2.0, 10.0, 20.0, 3.0, 4.0, 30.0, 40.0])
    cells = [values[(groups == g) & (strata == s)] for g in "AB" for s in "xy"]

    def check(batch: FloatArray) -> FloatArray:
        for cell, expected in zip(np.split(np.arange(8), 4), cells, strict=True):
            assert np.isin(batch[:, cell], expected).all()
        return np.asarray(batch.mean(axis=1))

    stratified_bootstrap(
        check, values, groups, strata, samples=50, alpha=0.05, rng=np.random.default_rng(1)
    )


def test_bootstrap_is_reproducible_from_its_generator() -> None:
    rng = np.random.default_rng(3)
    values = rng.gamma(2.0, 100.0, 300)
    groups = rng.choice(["A", "B"], 300)

    def mean(batch: FloatArray) -> FloatArray:
        return np.asarray(batch.mean(axis=1))

    first = stratified_bootstrap(
        mean, values, groups, samples=100, alpha=0.05, rng=np.random.default_rng(9)
    )
    again = stratified_bootstrap(
        mean, values, groups, samples=100, alpha=0.05, rng=np.random.default_rng(9)
    )
    assert first == again


def test_a_statistic_undefined_on_some_resample_has_an_unbounded_interval() -> None:
    values = np.array([0.0] * 29 + [1.0] + [1.0] * 100)
    groups = np.array(["sparse"] * 30 + ["dense"] * 100)

    def log_mean_of_sparse(batch: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            return np.asarray(np.log(batch[:, :30].mean(axis=1)))

    interval = stratified_bootstrap(
        log_mean_of_sparse, values, groups, samples=400, alpha=0.05, rng=np.random.default_rng(2)
    )
    assert interval.estimate == pytest.approx(math.log(1 / 30))
    assert (interval.lower, interval.upper) == (-math.inf, math.inf)


def test_stratified_bootstrap_covers_a_mean_ratio_with_a_group_of_25() -> None:
    """2,000 simulated data sets of a small group (25) and a large one (200), skewed
    amounts, true log mean ratio log(0.8). To keep the test fast they are bootstrapped in
    batches side by side: every (simulation, group) is its own cell, so each data set is
    resampled exactly as it would be alone."""
    rng = np.random.default_rng(21)
    small, large, batch = 25, 200, 100
    truth = math.log(0.8)
    covered = 0
    for _ in range(SIMULATIONS // batch):
        draws = np.concatenate(
            [
                rng.lognormal(0.0, 0.5, (batch, small)) * 0.8,
                rng.lognormal(0.0, 0.5, (batch, large)),
            ],
            axis=1,
        )
        cells = np.repeat(np.arange(batch), small + large) * 2 + np.tile(
            np.r_[np.zeros(small), np.ones(large)], batch
        ).astype(int)

        def log_ratios(resampled: FloatArray) -> FloatArray:
            shaped = resampled.reshape(resampled.shape[0], batch, small + large)
            return np.asarray(
                np.log(shaped[:, :, :small].mean(axis=2) / shaped[:, :, small:].mean(axis=2))
            )

        intervals = stratified_bootstrap_many(
            log_ratios, draws.ravel(), cells, samples=400, alpha=0.05, rng=rng
        )
        covered += sum(interval.contains(truth) for interval in intervals)
    assert covered / SIMULATIONS >= coverage_floor(0.95)

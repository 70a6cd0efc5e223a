"""Population-stability drift and the monitor's judgement of one window (fairness/drift.py).

Hand-built distributions for the arithmetic, and simulations for the claim that matters:
a window with no drift does not raise a drift alarm more often than alpha allows,
while a real shift of a group's applicant mix is caught.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from contracts.metrics import DecisionCell, Side
from contracts.monitoring import DriftKind, MonitoringPolicy
from fairness.drift import (
    drift_results,
    judge_monitor_window,
    null_psi,
    psi,
    reference_from,
)
from fairness.live import LiveThresholds, MetricVerdict

T0, T1 = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
STRATA = [f"s{i}" for i in range(8)]


def cells(
    mix: dict[str, dict[str, int]], approved_share: float = 0.6, amount: float = 5_000.0
) -> list[DecisionCell]:
    """Stable-side cells: per group, decisions per stratum, a share approved at ``amount``."""
    out = []
    for group, strata in mix.items():
        for stratum, count in strata.items():
            approved = round(count * approved_share)
            for is_approved, n in ((True, approved), (False, count - approved)):
                if n:
                    total = amount * n if is_approved else 0.0
                    out.append(
                        DecisionCell(
                            side=Side.STABLE,
                            group=group,
                            stratum=stratum,
                            approved=is_approved,
                            outcome=None,
                            count=n,
                            amount_sum=total,
                            amount_sumsq=amount * total + (n - 1) * 400.0**2 * is_approved,
                        )
                    )
    return out


def test_psi_is_zero_for_equal_distributions_and_matches_the_formula() -> None:
    assert psi({"a": 50, "b": 50}, {"a": 100, "b": 100}) == pytest.approx(0.0, abs=1e-12)
    reference, current = {"a": 80, "b": 20}, {"a": 50, "b": 50}
    r = [(80 + 0.5) / 101, (20 + 0.5) / 101]
    c = [(50 + 0.5) / 101, (50 + 0.5) / 101]
    expected = sum((ci - ri) * math.log(ci / ri) for ci, ri in zip(c, r, strict=True))
    assert psi(reference, current) == pytest.approx(expected)
    # A bin new to the window counts as drift, not as a division by zero.
    assert psi({"a": 100}, {"a": 50, "new": 50}) > 0.5


def test_the_noise_allowance_shrinks_with_sample_size() -> None:
    small, large = null_psi(8, 500, 500, 0.01), null_psi(8, 50_000, 50_000, 0.01)
    assert small > 0.03 and large < 0.001
    assert null_psi(1, 10, 10, 0.01) == 0.0


def test_no_drift_raises_no_more_alarms_than_alpha() -> None:
    """2,000 pairs of windows drawn from one uneven mix (a stratum holds 2.5%): the
    false-alarm rate of one drift test is its alpha share (2.5%), within what 2,000
    trials can tell (2.6 standard errors, a 1% chance of failing by bad luck)."""
    rng = np.random.default_rng(3)
    shares = rng.dirichlet(np.ones(len(STRATA)) * 3)
    alarms, trials, nominal = 0, 2_000, 0.05 / 2  # alpha is shared by the two drift tests
    for _ in range(trials):
        reference = dict(zip(STRATA, rng.multinomial(600, shares).tolist(), strict=True))
        current = dict(zip(STRATA, rng.multinomial(600, shares).tolist(), strict=True))
        [result] = drift_results(
            cells({"A": current}),
            reference_from(cells({"A": reference}), T0, T1),
            max_psi=0.0,  # no tolerance at all: only the noise allowance stands
            min_samples=100,
            alpha=0.05,
        )[:1]
        alarms += result.verdict is MetricVerdict.BREACH
    assert alarms / trials <= nominal + 2.6 * math.sqrt(nominal * (1 - nominal) / trials)


def test_a_shifted_applicant_mix_is_caught_and_a_thin_window_is_inconclusive() -> None:
    before = {"A": dict.fromkeys(STRATA, 100), "B": dict.fromkeys(STRATA, 100)}
    after = {"A": dict.fromkeys(STRATA, 100), "B": {s: 25 + 50 * i for i, s in enumerate(STRATA)}}
    reference = reference_from(cells(before), T0, T1)
    results = drift_results(cells(after), reference, max_psi=0.25, min_samples=500, alpha=0.01)
    verdicts = {(r.group, r.kind): r.verdict for r in results}
    assert verdicts[("B", DriftKind.FEATURE)] is MetricVerdict.BREACH
    assert verdicts[("A", DriftKind.FEATURE)] is MetricVerdict.PASS
    assert verdicts[("B", DriftKind.PREDICTION)] is MetricVerdict.PASS  # same approval share

    thin = {"A": dict.fromkeys(STRATA, 10), "B": dict.fromkeys(STRATA, 10)}
    results = drift_results(cells(thin), reference, max_psi=0.25, min_samples=500, alpha=0.01)
    assert {r.verdict for r in results} == {MetricVerdict.INCONCLUSIVE}
    assert "needs 500 decisions" in results[0].reason


def test_the_window_verdict_combines_fairness_and_drift() -> None:
    policy = MonitoringPolicy(
        thresholds=LiveThresholds(
            max_approval_rate_shift=None, max_error_rate_increase=None, min_samples_per_group=100
        ),
        min_drift_samples=200,
    )
    even = {"A": dict.fromkeys(STRATA, 100), "B": dict.fromkeys(STRATA, 100)}
    fairness, drift, verdict = judge_monitor_window(cells(even), policy, None)
    assert verdict is MetricVerdict.PASS and drift == []

    # Group B's limits 30% lower at equal strata: a fairness breach, no drift needed.
    unfair = cells({"A": even["A"]}) + cells({"B": even["B"]}, amount=3_500.0)
    fairness, _, verdict = judge_monitor_window(unfair, policy, None)
    assert verdict is MetricVerdict.BREACH and "conditional" in fairness.headline

    # Fair, but group B's applicants moved: a drift breach against the reference.
    reference = reference_from(cells(even), T0, T1)
    moved = {"A": even["A"], "B": {s: 25 + 50 * i for i, s in enumerate(STRATA)}}
    _, drift, verdict = judge_monitor_window(cells(moved), policy, reference)
    assert verdict is MetricVerdict.BREACH
    assert [d.group for d in drift if d.verdict is MetricVerdict.BREACH] == ["B"]

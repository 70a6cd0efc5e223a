"""Population-stability drift per group, and one drift-monitor evaluation of a live window.

PSI (population stability index) compares a current distribution with a reference
one: ``sum((c - r) * ln(c / r))`` over the bins' proportions. Two distributions per
group are compared, both read from the same decision cells the fairness metrics use:

* feature drift: the group's applicants over the income x credit strata; a shift
  here means the population changed, so yesterday's fairness evidence may not hold;
* prediction drift: the group's decisions, approved or declined.

Sampling noise alone gives PSI a positive value: with ``k`` bins and ``n``/``m``
decisions, ``PSI * nm/(n+m)`` is roughly chi-square with ``k - 1`` degrees of freedom
when nothing drifted. A breach therefore needs the PSI above the tolerance *plus* the
PSI that noise alone exceeds with probability alpha (Bonferroni over the drift
tests), so a small window cannot raise a drift alarm by chance. Bins empty on one
side get half a count on both sides (a Jeffreys-style pseudo-count), so a stratum
new to the window counts as drift instead of dividing by zero.

Pure: no I/O, no clocks.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from scipy.stats import chi2

from contracts.fairness import MetricVerdict, WindowAnalysis
from contracts.metrics import DecisionCell, Side
from contracts.monitoring import (
    DriftKind,
    DriftReference,
    DriftResult,
    MonitoringPolicy,
)
from fairness.intervals import corrected_alpha
from fairness.live import analyse_window

PSEUDO_COUNT = 0.5


def psi(reference: Mapping[str, int], current: Mapping[str, int]) -> float:
    """PSI of ``current`` against ``reference``, both counts per bin (any bins, any order)."""
    bins = set(reference) | set(current)
    ref_total = sum(reference.values()) + PSEUDO_COUNT * len(bins)
    cur_total = sum(current.values()) + PSEUDO_COUNT * len(bins)
    value = 0.0
    for b in bins:
        r = (reference.get(b, 0) + PSEUDO_COUNT) / ref_total
        c = (current.get(b, 0) + PSEUDO_COUNT) / cur_total
        value += (c - r) * math.log(c / r)
    return value


def null_psi(bins: int, reference_n: int, current_n: int, alpha: float) -> float:
    """The PSI that sampling noise alone exceeds with probability ``alpha``."""
    if bins < 2:
        return 0.0
    return float(chi2.ppf(1 - alpha, bins - 1)) * (1 / reference_n + 1 / current_n)


def distributions(
    cells: Sequence[DecisionCell],
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Per group: decisions per stratum, and decisions approved / declined."""
    strata: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    decisions: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for cell in cells:
        strata[cell.group][cell.stratum] += cell.count
        decisions[cell.group]["approved" if cell.approved else "declined"] += cell.count
    return (
        {g: dict(s) for g, s in strata.items()},
        {g: dict(d) for g, d in decisions.items()},
    )


def reference_from(
    cells: Sequence[DecisionCell], since: datetime, until: datetime
) -> DriftReference:
    strata, decisions = distributions(cells)
    return DriftReference(since=since, until=until, strata=strata, decisions=decisions)


def drift_results(
    cells: Sequence[DecisionCell],
    reference: DriftReference,
    *,
    max_psi: float,
    min_samples: int,
    alpha: float,
) -> list[DriftResult]:
    """Feature and prediction PSI for every group in the reference or the window."""
    strata, decisions = distributions(cells)
    groups = sorted(set(reference.decisions) | set(decisions))
    tests = [
        (DriftKind.FEATURE, reference.strata, strata),
        (DriftKind.PREDICTION, reference.decisions, decisions),
    ]
    test_alpha = corrected_alpha(alpha, max(len(groups) * len(tests), 1))
    return [
        _judge(
            group, kind, ref.get(group, {}), cur.get(group, {}), max_psi, min_samples, test_alpha
        )
        for group in groups
        for kind, ref, cur in tests
    ]


def _judge(
    group: str,
    kind: DriftKind,
    reference: Mapping[str, int],
    current: Mapping[str, int],
    max_psi: float,
    min_samples: int,
    alpha: float,
) -> DriftResult:
    ref_n, cur_n = sum(reference.values()), sum(current.values())
    if ref_n < min_samples or cur_n < min_samples:
        return DriftResult(
            group=group,
            kind=kind,
            psi=None,
            null_psi=None,
            reference_n=ref_n,
            current_n=cur_n,
            threshold=max_psi,
            verdict=MetricVerdict.INCONCLUSIVE,
            reason=f"{group}: {kind.value} drift needs {min_samples} decisions in both windows "
            f"(reference {ref_n}, current {cur_n})",
        )
    value = psi(reference, current)
    noise = null_psi(len(set(reference) | set(current)), ref_n, cur_n, alpha)
    breach = value > max_psi + noise
    return DriftResult(
        group=group,
        kind=kind,
        psi=value,
        null_psi=noise,
        reference_n=ref_n,
        current_n=cur_n,
        threshold=max_psi,
        verdict=MetricVerdict.BREACH if breach else MetricVerdict.PASS,
        reason=f"{group}: {kind.value} PSI {value:.3f} "
        f"{'>' if breach else '<='} {max_psi} + noise {noise:.3f}",
    )


def judge_monitor_window(
    cells: Sequence[DecisionCell],
    policy: MonitoringPolicy,
    reference: DriftReference | None,
    *,
    decision: bool = True,
    amount: bool = True,
) -> tuple[WindowAnalysis, list[DriftResult], MetricVerdict]:
    """The fairness analysis of a monitored window, its drift, and the combined verdict.

    Every live decision counts (a monitored model has no canary): the cells are judged
    as one side, group against group, with the canary's analysis and the policy's
    bands. A breach of either fairness or drift is a breach; otherwise an inconclusive
    fairness analysis (too few decisions) makes the look inconclusive. ``decision`` and
    ``amount`` say which outcomes the model makes (see :func:`fairness.live.analyse_window`).
    """
    live = [c.model_copy(update={"side": Side.CANDIDATE}) for c in cells if c.side == Side.STABLE]
    fairness = analyse_window(
        live, policy.thresholds, alpha=policy.alpha, decision=decision, amount=amount
    )
    drift: list[DriftResult] = []
    if reference is not None and policy.max_psi is not None:
        drift = drift_results(
            live,
            reference,
            max_psi=policy.max_psi,
            min_samples=policy.min_drift_samples,
            alpha=policy.alpha,
        )
    if fairness.verdict == MetricVerdict.BREACH or any(
        d.verdict == MetricVerdict.BREACH for d in drift
    ):
        return fairness, drift, MetricVerdict.BREACH
    return fairness, drift, fairness.verdict

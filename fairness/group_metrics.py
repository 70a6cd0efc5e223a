"""Group fairness metrics per group and per intersection, each with an honest interval.

For every slicing of the protected attributes (each attribute alone and every
intersection, e.g. ``group|sex`` with groups such as ``B|F``) this measures, with
counts: selection rate, true- and false-positive rates, and the between-group
aggregates the gates judge: disparate-impact ratio, demographic-parity difference,
equalized-odds difference, group mean ratio and conditional amount disparity.

How the intervals are built, and why:

* rates get Wilson intervals; an aggregate over k groups (max - min, or min / max)
  is bounded through its k(k-1)/2 pairwise intervals (Newcombe for differences,
  MOVER-R for ratios): if every pairwise interval holds, the aggregate lies between
  the extreme pairwise limits. Exact for two groups, conservative for more, and
  honest about which groups sit at the extremes (they are random too).
* the group mean ratio is bounded the same way from pairwise log mean ratios with
  a group-stratified bootstrap (logs, because a ratio of means is skewed); the
  conditional amount disparity (a max over groups of stratum-weighted gaps, see
  :func:`fairness.outcomes.conditional_disparity`) is bootstrapped as a whole within
  group x stratum cells.
* all of them at one Bonferroni level, alpha / m, where m counts every pairwise and
  bootstrap interval an aggregate rests on, across all slicings (plus whatever the
  caller compares besides, ``extra_comparisons``), so the whole report holds jointly.

A group with fewer than ``min_group_size`` rows (for a rate: fewer trials, e.g.
positives for the TPR) is ``inconclusive``: reported with its counts and interval,
left out of every aggregate, and named in the aggregate's ``excluded_groups``.
Point estimates equal fairlearn's on the same rows; only the intervals are new.

Pure: no I/O; randomness only from the generator passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import combinations

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict
from scipy.sparse import csr_array

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
from fairness.outcomes import ConditionalDisparity, conditional_disparity

SLICE_SEPARATOR = "|"


class Status(StrEnum):
    MEASURED = "measured"
    INCONCLUSIVE = "inconclusive"


class Rate(BaseModel):
    """``successes`` of ``trials`` (e.g. approvals of applicants, approvals of positives)."""

    model_config = ConfigDict(frozen=True)

    successes: int
    trials: int
    status: Status
    interval: Interval | None  # None when there are no trials

    @property
    def estimate(self) -> float | None:
        return self.successes / self.trials if self.trials else None


class GroupMetrics(BaseModel):
    """One group (or intersection) of one slicing."""

    model_config = ConfigDict(frozen=True)

    group: str
    size: int
    status: Status
    selection_rate: Rate | None
    true_positive_rate: Rate | None
    false_positive_rate: Rate | None
    amount_rows: int | None
    mean_amount: float | None


class Disparity(BaseModel):
    """A between-group aggregate of one slicing, over the groups large enough to judge."""

    model_config = ConfigDict(frozen=True)

    status: Status
    estimate: float | None
    interval: Interval | None
    groups: list[str]
    excluded_groups: list[str]
    extremes: list[str]  # [worst-off group, best-off group] behind the estimate
    note: str


class SlicingMetrics(BaseModel):
    """Every group of one slicing and the aggregates across them (None: not measurable)."""

    model_config = ConfigDict(frozen=True)

    name: str
    attributes: list[str]
    groups: list[GroupMetrics]
    disparate_impact_ratio: Disparity | None
    demographic_parity_difference: Disparity | None
    equalized_odds_difference: Disparity | None
    group_mean_ratio: Disparity | None
    conditional_amount_disparity: Disparity | None
    conditional_detail: ConditionalDisparity | None


class FairnessReport(BaseModel):
    """All slicings, and the multiplicity correction their intervals share."""

    model_config = ConfigDict(frozen=True)

    rows: int
    amount_rows: int | None
    min_group_size: int
    alpha: float
    comparisons: int
    corrected_alpha: float
    bootstrap_samples: int
    slicings: list[SlicingMetrics]

    def slicing(self, name: str) -> SlicingMetrics:
        for slicing in self.slicings:
            if slicing.name == name:
                return slicing
        raise KeyError(name)


_Counts = tuple[npt.NDArray[np.int_], npt.NDArray[np.int_]]  # successes, trials per group


@dataclass(frozen=True)
class _Amounts:
    """The continuous outcome and the rows its metrics use (the granted ones, given a decision)."""

    values: FloatArray
    rows: npt.NDArray[np.bool_]
    strata: npt.NDArray[np.str_] | None


class _Slicing:
    """One slicing's groups and the counts its comparisons are planned from."""

    def __init__(
        self,
        attributes: Sequence[str],
        labels: npt.NDArray[np.str_],
        decisions: npt.NDArray[np.bool_] | None,
        truth: npt.NDArray[np.bool_] | None,
        amounts: _Amounts | None,
        min_size: int,
    ) -> None:
        self.attributes = list(attributes)
        self.name = SLICE_SEPARATOR.join(attributes)
        names, codes = np.unique(labels, return_inverse=True)
        self.names = [str(name) for name in names]
        self.codes = codes.astype(np.intp)
        self.min_size = min_size
        self.sizes = self.count(None)
        self.selection: _Counts | None = None
        self.tpr: _Counts | None = None
        self.fpr: _Counts | None = None
        if decisions is not None:
            self.selection = (self.count(decisions), self.sizes)
            if truth is not None:
                positives = self.count(truth)
                self.tpr = (self.count(truth & decisions), positives)
                self.fpr = (self.count(~truth & decisions), self.sizes - positives)
        self.amount_sizes = None if amounts is None else self.count(amounts.rows)

    def count(self, mask: npt.NDArray[np.bool_] | None) -> npt.NDArray[np.int_]:
        """Rows per group (only rows where ``mask`` holds, when given)."""
        weights = None if mask is None else mask.astype(np.float64)
        counts = np.bincount(self.codes, weights=weights, minlength=len(self.names))
        return counts.astype(np.int_)

    def judged(self, trials: npt.NDArray[np.int_] | None) -> list[int]:
        """Indices of the groups with at least ``min_size`` trials."""
        if trials is None:
            return []
        return [i for i in range(len(self.names)) if trials[i] >= self.min_size]

    def judged_for_odds(self) -> list[int]:
        """Groups with enough positives for a TPR and enough negatives for an FPR."""
        if self.tpr is None or self.fpr is None:
            return []
        return sorted(set(self.judged(self.tpr[1])) & set(self.judged(self.fpr[1])))

    def comparisons(self, stratified: bool) -> int:
        """How many intervals this slicing's aggregates rest on (for the Bonferroni m)."""
        selection = 2 * _pairs(len(self.judged(self.sizes))) if self.selection else 0
        odds = 2 * _pairs(len(self.judged_for_odds()))
        amount_groups = len(self.judged(self.amount_sizes))
        conditional = int(stratified and amount_groups >= 2)
        return selection + odds + _pairs(amount_groups) + conditional


def measure_fairness(
    protected: Mapping[str, npt.ArrayLike],
    *,
    decided: npt.ArrayLike | None = None,
    labels: npt.ArrayLike | None = None,
    amounts: npt.ArrayLike | None = None,
    strata: npt.ArrayLike | None = None,
    min_group_size: int = 30,
    alpha: float = 0.05,
    bootstrap_samples: int = 400,
    extra_comparisons: int = 0,
    rng: np.random.Generator,
) -> FairnessReport:
    """Measure every slicing of ``protected`` (attribute name -> one label per row).

    ``decided`` is the binary decision (True: positive), ``labels`` the ground truth for
    TPR/FPR (needs ``decided``), ``amounts`` the continuous outcome and ``strata`` one
    stratum label per row (e.g. from :func:`fairness.outcomes.combine_strata`). When a
    decision is given, amounts are compared over granted rows only: whether someone is
    granted is the binary metrics' business, how much they get is the amount metrics'.
    """
    if min_group_size < 1:
        raise ValueError(f"min_group_size must be at least 1, got {min_group_size}")
    if extra_comparisons < 0:
        raise ValueError(f"extra_comparisons must not be negative, got {extra_comparisons}")
    columns = _protected_columns(protected)
    rows = len(next(iter(columns.values())))
    decisions = None if decided is None else _binary(decided, rows, "decided")
    truth = None if labels is None else _binary(labels, rows, "labels")
    if truth is not None and decisions is None:
        raise ValueError("labels need a decision (decided) to compare them with")
    if decisions is None and amounts is None:
        raise ValueError("nothing to measure: give decided, amounts, or both")
    amount_data = None
    if amounts is not None:
        amount_data = _Amounts(
            values=_amounts(amounts, rows),
            rows=decisions if decisions is not None else np.ones(rows, dtype=bool),
            strata=None if strata is None else _strings(strata, rows, "strata"),
        )

    slicings = [
        _Slicing(
            attributes,
            intersection_labels([columns[name] for name in attributes]),
            decisions,
            truth,
            amount_data,
            min_group_size,
        )
        for size in range(1, len(columns) + 1)
        for attributes in combinations(columns, size)
    ]
    comparisons = max(
        1,
        extra_comparisons
        + sum(slicing.comparisons(stratified=strata is not None) for slicing in slicings),
    )
    level = corrected_alpha(alpha, comparisons)
    return FairnessReport(
        rows=rows,
        amount_rows=None if amount_data is None else int(amount_data.rows.sum()),
        min_group_size=min_group_size,
        alpha=alpha,
        comparisons=comparisons,
        corrected_alpha=level,
        bootstrap_samples=bootstrap_samples,
        slicings=[
            _measure(slicing, amount_data, level, bootstrap_samples, rng) for slicing in slicings
        ],
    )


def intersection_labels(columns: Sequence[npt.ArrayLike]) -> npt.NDArray[np.str_]:
    """One label per row naming its intersection of several attributes, e.g. "B|F"."""
    if not columns:
        raise ValueError("at least one attribute is needed")
    joined = np.asarray(columns[0]).astype(str)
    for column in columns[1:]:
        joined = np.char.add(np.char.add(joined, SLICE_SEPARATOR), np.asarray(column).astype(str))
    return joined


def rate_gap_interval(
    successes: Mapping[str, int], trials: Mapping[str, int], *, alpha: float
) -> Interval:
    """Interval for max - min of the groups' rates, from pairwise Newcombe intervals.

    ``|p_g - p_h|`` has the lower limit max(L, -U, 0) and the upper limit max(U, -L)
    when ``p_g - p_h`` lies in [L, U]; if every pair's interval holds, the largest gap
    lies between the largest lower limit and the largest upper limit.
    """
    groups = _at_least_two(trials)
    rates = {group: successes[group] / trials[group] for group in groups}
    lower = upper = 0.0
    for first, second in combinations(groups, 2):
        pair = newcombe_interval(
            successes[first], trials[first], successes[second], trials[second], alpha=alpha
        )
        lower = max(lower, pair.lower, -pair.upper)
        upper = max(upper, pair.upper, -pair.lower)
    estimate = max(rates.values()) - min(rates.values())
    return Interval(
        estimate=estimate,
        lower=min(lower, estimate),
        upper=max(upper, estimate),
        confidence=1.0 - alpha,
        method="pairwise-newcombe",
    )


def rate_ratio_interval(
    successes: Mapping[str, int], trials: Mapping[str, int], *, alpha: float
) -> Interval:
    """Interval for min / max of the groups' rates (the disparate-impact ratio).

    From pairwise MOVER-R intervals for ``p_g / p_h``, folded to min(theta, 1 / theta):
    the ratio of the pair's lower rate to its higher one, whichever that is. Two groups
    with no successes are equal (ratio 1), as in :mod:`fairness.outcomes`.
    """
    groups = _at_least_two(trials)
    rates = {group: successes[group] / trials[group] for group in groups}
    lower = upper = 1.0
    for first, second in combinations(groups, 2):
        pair = ratio_interval(
            successes[first], trials[first], successes[second], trials[second], alpha=alpha
        )
        pair_lower, pair_upper = _folded(pair.lower, pair.upper)
        lower, upper = min(lower, pair_lower), min(upper, pair_upper)
    highest = max(rates.values())
    estimate = 1.0 if highest == 0 else min(rates.values()) / highest
    return Interval(
        estimate=estimate,
        lower=min(lower, estimate),
        upper=max(upper, estimate),
        confidence=1.0 - alpha,
        method="pairwise-mover-r",
    )


def mean_ratio_interval(
    amounts: npt.ArrayLike,
    groups: npt.ArrayLike,
    *,
    alpha: float,
    samples: int,
    rng: np.random.Generator,
) -> Interval:
    """Interval for the lowest group mean over the highest, resampling within groups.

    Each pair's log mean ratio is bootstrapped (one batch for all pairs) and folded
    like :func:`rate_ratio_interval`. A group whose amounts are all zero keeps a mean
    of zero in every resample, so its pairs are exact: ratio 0, or 1 against another
    such group.
    """
    values = np.asarray(amounts, dtype=np.float64)
    names, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    if len(names) < 2:
        raise ValueError("a mean ratio needs at least two groups")
    means = np.bincount(codes, weights=values) / np.bincount(codes)
    pairs = list(combinations(range(len(names)), 2))
    positive = [(i, j) for i, j in pairs if means[i] > 0 and means[j] > 0]
    limits = [(0.0, 0.0) if means[i] + means[j] > 0 else (1.0, 1.0) for i, j in pairs]
    if positive:
        averaging = _cell_averages(codes, len(names))
        first = np.array([i for i, _ in positive])
        second = np.array([j for _, j in positive])

        def log_ratios(batch: FloatArray) -> FloatArray:
            with np.errstate(divide="ignore"):
                logs = np.log(batch @ averaging)
            return np.asarray(logs[:, first] - logs[:, second], dtype=np.float64)

        bootstrapped = stratified_bootstrap_many(
            log_ratios, values, codes, samples=samples, alpha=alpha, rng=rng
        )
        for pair, interval in zip(positive, bootstrapped, strict=True):
            limits[pairs.index(pair)] = _folded(math.exp(interval.lower), math.exp(interval.upper))
    highest = float(means.max())
    estimate = 1.0 if highest == 0 else float(means.min()) / highest
    return Interval(
        estimate=estimate,
        lower=min(min(low for low, _ in limits), estimate),
        upper=max(min(high for _, high in limits), estimate),
        confidence=1.0 - alpha,
        method="pairwise-log-ratio-stratified-bootstrap",
    )


def conditional_disparity_interval(
    amounts: npt.ArrayLike,
    groups: npt.ArrayLike,
    strata: npt.ArrayLike,
    *,
    min_count: int,
    alpha: float,
    samples: int,
    rng: np.random.Generator,
) -> tuple[ConditionalDisparity, Interval | None]:
    """:func:`fairness.outcomes.conditional_disparity` and its interval (None if unmeasurable).

    Resampling is within group x stratum cells of the strata the measure uses, so
    every resample uses the same strata with the same weights. The statistic is a
    maximum, biased upwards when groups are truly equal: the interval then sits a
    little high, which errs towards failing a "<=" gate, never towards passing it.
    """
    values = np.asarray(amounts, dtype=np.float64)
    group_labels = np.asarray(groups).astype(str)
    stratum_labels = np.asarray(strata).astype(str)
    detail = conditional_disparity(values, group_labels, stratum_labels, min_count=min_count)
    if detail.relative_gap is None:
        return detail, None
    used = np.isin(stratum_labels, [comparison.stratum for comparison in detail.strata])
    group_names, group_codes = np.unique(group_labels[used], return_inverse=True)
    stratum_names, stratum_codes = np.unique(stratum_labels[used], return_inverse=True)
    shape = (len(stratum_names), len(group_names))
    cells = stratum_codes * shape[1] + group_codes
    averaging = _cell_averages(cells, shape[0] * shape[1])
    weights = np.bincount(stratum_codes, minlength=shape[0]) / len(cells)

    def worst_gap(batch: FloatArray) -> FloatArray:
        means = (batch @ averaging).reshape(batch.shape[0], *shape)
        best = means.max(axis=2, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            gaps = np.where(best > 0, 1.0 - means / best, 0.0)
        return np.asarray(np.einsum("bsg,s->bg", gaps, weights).max(axis=1), dtype=np.float64)

    interval = stratified_bootstrap(
        worst_gap,
        values[used],
        group_codes,
        stratum_codes,
        samples=samples,
        alpha=alpha,
        rng=rng,
    )
    return detail, interval.clipped(0.0, 1.0)


def _measure(
    slicing: _Slicing,
    amounts: _Amounts | None,
    alpha: float,
    samples: int,
    rng: np.random.Generator,
) -> SlicingMetrics:
    mean_ratio = conditional = None
    detail = None
    if amounts is not None:
        mean_ratio = _mean_ratio(slicing, amounts, alpha, samples, rng)
        if amounts.strata is not None:
            conditional, detail = _conditional(
                slicing, amounts, amounts.strata, alpha, samples, rng
            )
    return SlicingMetrics(
        name=slicing.name,
        attributes=slicing.attributes,
        groups=[
            _group_metrics(slicing, index, amounts, alpha) for index in range(len(slicing.names))
        ],
        disparate_impact_ratio=_rate_aggregate(slicing, slicing.selection, alpha, ratio=True),
        demographic_parity_difference=_rate_aggregate(
            slicing, slicing.selection, alpha, ratio=False
        ),
        equalized_odds_difference=_equalized_odds(slicing, alpha),
        group_mean_ratio=mean_ratio,
        conditional_amount_disparity=conditional,
        conditional_detail=detail,
    )


def _group_metrics(
    slicing: _Slicing, index: int, amounts: _Amounts | None, alpha: float
) -> GroupMetrics:
    def rate(counts: _Counts | None) -> Rate | None:
        if counts is None:
            return None
        hits, total = int(counts[0][index]), int(counts[1][index])
        return Rate(
            successes=hits,
            trials=total,
            status=Status.MEASURED if total >= slicing.min_size else Status.INCONCLUSIVE,
            interval=wilson_interval(hits, total, alpha=alpha) if total else None,
        )

    amount_rows = mean_amount = None
    if amounts is not None:
        rows = (slicing.codes == index) & amounts.rows
        amount_rows = int(rows.sum())
        mean_amount = float(amounts.values[rows].mean()) if amount_rows else None
    size = int(slicing.sizes[index])
    return GroupMetrics(
        group=slicing.names[index],
        size=size,
        status=Status.MEASURED if size >= slicing.min_size else Status.INCONCLUSIVE,
        selection_rate=rate(slicing.selection),
        true_positive_rate=rate(slicing.tpr),
        false_positive_rate=rate(slicing.fpr),
        amount_rows=amount_rows,
        mean_amount=mean_amount,
    )


def _rate_aggregate(
    slicing: _Slicing, counts: _Counts | None, alpha: float, *, ratio: bool
) -> Disparity | None:
    if counts is None:
        return None
    names = slicing.names
    judged = slicing.judged(counts[1])
    excluded = _excluded(names, judged, counts[1], f"fewer than {slicing.min_size} rows")
    if len(judged) < 2:
        return _inconclusive(names, judged, excluded)
    hits, totals, rates = _rates(names, judged, counts)
    low, high = min(rates, key=rates.__getitem__), max(rates, key=rates.__getitem__)
    build = rate_ratio_interval if ratio else rate_gap_interval
    return _measured(
        build(hits, totals, alpha=alpha),
        names,
        judged,
        excluded,
        [low, high],
        f"lowest {low} {rates[low]:.3f}, highest {high} {rates[high]:.3f}",
    )


def _equalized_odds(slicing: _Slicing, alpha: float) -> Disparity | None:
    """The larger of the TPR gap and the FPR gap, over groups with enough of both labels."""
    if slicing.tpr is None or slicing.fpr is None:
        return None
    names = slicing.names
    judged = slicing.judged_for_odds()
    excluded = _excluded(
        names,
        judged,
        np.minimum(slicing.tpr[1], slicing.fpr[1]),
        f"fewer than {slicing.min_size} positives or negatives",
    )
    if len(judged) < 2:
        return _inconclusive(names, judged, excluded)
    gaps: list[tuple[Interval, list[str]]] = []
    for counts in (slicing.tpr, slicing.fpr):
        hits, totals, rates = _rates(names, judged, counts)
        extremes = [min(rates, key=rates.__getitem__), max(rates, key=rates.__getitem__)]
        gaps.append((rate_gap_interval(hits, totals, alpha=alpha), extremes))
    (tpr_gap, tpr_extremes), (fpr_gap, fpr_extremes) = gaps
    interval = Interval(
        estimate=max(tpr_gap.estimate, fpr_gap.estimate),
        lower=max(tpr_gap.lower, fpr_gap.lower),
        upper=max(tpr_gap.upper, fpr_gap.upper),
        confidence=1.0 - alpha,
        method="pairwise-newcombe",
    )
    extremes = tpr_extremes if tpr_gap.estimate >= fpr_gap.estimate else fpr_extremes
    note = f"TPR gap {tpr_gap.estimate:.3f}, FPR gap {fpr_gap.estimate:.3f}"
    return _measured(interval, names, judged, excluded, extremes, note)


def _mean_ratio(
    slicing: _Slicing, amounts: _Amounts, alpha: float, samples: int, rng: np.random.Generator
) -> Disparity:
    names = slicing.names
    sizes = slicing.count(amounts.rows)
    judged = slicing.judged(sizes)
    excluded = _excluded(names, judged, sizes, f"fewer than {slicing.min_size} amount rows")
    if len(judged) < 2:
        return _inconclusive(names, judged, excluded)
    rows = amounts.rows & np.isin(slicing.codes, judged)
    labels = np.asarray(names)[slicing.codes[rows]]
    interval = mean_ratio_interval(
        amounts.values[rows], labels, alpha=alpha, samples=samples, rng=rng
    ).clipped(0.0, 1.0)
    means = {names[i]: float(amounts.values[rows & (slicing.codes == i)].mean()) for i in judged}
    low, high = min(means, key=means.__getitem__), max(means, key=means.__getitem__)
    note = f"lowest mean {low} {means[low]:,.2f}, highest {high} {means[high]:,.2f}"
    return _measured(interval, names, judged, excluded, [low, high], note)


def _conditional(
    slicing: _Slicing,
    amounts: _Amounts,
    strata: npt.NDArray[np.str_],
    alpha: float,
    samples: int,
    rng: np.random.Generator,
) -> tuple[Disparity, ConditionalDisparity | None]:
    names = slicing.names
    sizes = slicing.count(amounts.rows)
    judged = slicing.judged(sizes)
    excluded = _excluded(names, judged, sizes, f"fewer than {slicing.min_size} amount rows")
    if len(judged) < 2:
        return _inconclusive(names, judged, excluded), None
    rows = amounts.rows & np.isin(slicing.codes, judged)
    detail, interval = conditional_disparity_interval(
        amounts.values[rows],
        np.asarray(names)[slicing.codes[rows]],
        strata[rows],
        min_count=slicing.min_size,
        alpha=alpha,
        samples=samples,
        rng=rng,
    )
    if interval is None:
        reason = f"no stratum has {slicing.min_size} amount rows of every group"
        return _inconclusive(names, judged, excluded, reason), detail
    note = (
        f"{detail.worst_group or 'no group'} furthest behind, over {len(detail.strata)} strata "
        f"({len(detail.skipped_strata)} left out for thin cells)"
    )
    worst = [detail.worst_group] if detail.worst_group else []
    return _measured(interval, names, judged, excluded, worst, note), detail


def _rates(
    names: list[str], judged: list[int], counts: _Counts
) -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
    hits = {names[i]: int(counts[0][i]) for i in judged}
    totals = {names[i]: int(counts[1][i]) for i in judged}
    return hits, totals, {group: hits[group] / totals[group] for group in hits}


def _measured(
    interval: Interval,
    names: list[str],
    judged: list[int],
    excluded: list[str],
    extremes: list[str],
    note: str,
) -> Disparity:
    return Disparity(
        status=Status.MEASURED,
        estimate=interval.estimate,
        interval=interval,
        groups=[names[i] for i in judged],
        excluded_groups=excluded,
        extremes=extremes,
        note=note if not excluded else f"{note}; not judged: {', '.join(excluded)}",
    )


def _inconclusive(
    names: list[str], judged: list[int], excluded: list[str], reason: str | None = None
) -> Disparity:
    reason = reason or f"fewer than two groups large enough to compare ({len(judged)})"
    return Disparity(
        status=Status.INCONCLUSIVE,
        estimate=None,
        interval=None,
        groups=[names[i] for i in judged],
        excluded_groups=excluded,
        extremes=[],
        note=reason if not excluded else f"{reason}; not judged: {', '.join(excluded)}",
    )


def _excluded(
    names: list[str], judged: list[int], sizes: npt.NDArray[np.int_], why: str
) -> list[str]:
    return [f"{names[i]} ({why}: {int(sizes[i])})" for i in range(len(names)) if i not in judged]


def _folded(lower: float, upper: float) -> tuple[float, float]:
    """Range of min(theta, 1 / theta) for theta in [lower, upper]: a pair's low/high ratio."""

    def fold(theta: float) -> float:
        if theta <= 0.0 or math.isinf(theta):
            return 0.0
        return min(theta, 1.0 / theta)

    low = min(fold(lower), fold(upper))
    high = 1.0 if lower <= 1.0 <= upper else max(fold(lower), fold(upper))
    return low, high


def _pairs(groups: int) -> int:
    return groups * (groups - 1) // 2


def _at_least_two(trials: Mapping[str, int]) -> list[str]:
    groups = sorted(trials)
    if len(groups) < 2:
        raise ValueError("comparing rates needs at least two groups")
    if any(trials[group] < 1 for group in groups):
        raise ValueError("every group needs at least one trial")
    return groups


def _cell_averages(codes: npt.NDArray[np.intp], cells: int) -> csr_array:
    """A rows x cells matrix whose product with values gives each cell's mean."""
    counts = np.bincount(codes, minlength=cells).astype(np.float64)
    weights = 1.0 / counts[codes]
    return csr_array((weights, (np.arange(len(codes)), codes)), shape=(len(codes), cells))


def _protected_columns(protected: Mapping[str, npt.ArrayLike]) -> dict[str, npt.NDArray[np.str_]]:
    if not protected:
        raise ValueError("at least one protected attribute is needed")
    columns = {name: np.asarray(values).astype(str) for name, values in protected.items()}
    lengths = {len(column) for column in columns.values()}
    if len(lengths) != 1 or any(column.ndim != 1 for column in columns.values()):
        raise ValueError("protected attributes must be 1-D and of the same length")
    if lengths == {0}:
        raise ValueError("no rows to measure")
    for name, column in columns.items():
        if any(SLICE_SEPARATOR in value for value in np.unique(column)):
            raise ValueError(f"values of {name!r} must not contain {SLICE_SEPARATOR!r}")
    return columns


def _strings(values: npt.ArrayLike, rows: int, name: str) -> npt.NDArray[np.str_]:
    array = np.asarray(values).astype(str)
    if array.ndim != 1 or len(array) != rows:
        raise ValueError(f"{name} must be 1-D with one value per row ({rows})")
    return array


def _binary(values: npt.ArrayLike, rows: int, name: str) -> npt.NDArray[np.bool_]:
    array = np.asarray(values)
    if array.ndim != 1 or len(array) != rows:
        raise ValueError(f"{name} must be 1-D with one value per row ({rows})")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold only booleans or 0/1")
    return array.astype(bool)


def _amounts(values: npt.ArrayLike, rows: int) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) != rows:
        raise ValueError(f"amounts must be 1-D with one value per row ({rows})")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError("amounts must be finite and non-negative")
    return array

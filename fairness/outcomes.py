"""Group outcome metrics for binary decisions and for amounts such as credit limits.

Binary metrics delegate to fairlearn so Fairlane's numbers are the field's numbers.
For amounts, a raw comparison of group means mixes discrimination with legitimate
differences (one group may simply earn less), so :func:`conditional_disparity`
compares groups only inside strata of comparable applicants (income band x credit
band) and refuses to draw conclusions from strata too thin to support them.

Pure functions of their inputs: no I/O, no clocks, safe in workflow code.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from fairlearn.metrics import MetricFrame, demographic_parity_ratio, selection_rate
from pydantic import BaseModel, ConfigDict

STRATUM_SEPARATOR = " x "


class StratumComparison(BaseModel):
    """How the groups fared inside one stratum of comparable applicants."""

    model_config = ConfigDict(frozen=True)

    stratum: str
    rows: int
    group_counts: dict[str, int]
    group_means: dict[str, float]
    best_group: str
    relative_gaps: dict[str, float]  # 1 - group mean / best group's mean


class ConditionalDisparity(BaseModel):
    """Groups' amounts compared within strata, weighted by stratum size.

    ``relative_gap`` is the worst-off group's weighted gap: 0.30 means "30% lower than
    the best-off group at the same income and credit history". It is ``None`` when no
    stratum has ``min_count`` rows of every group, because then nothing can be claimed.
    ``worst_group`` is ``None`` then too, and when no group is behind at all.
    """

    model_config = ConfigDict(frozen=True)

    relative_gap: float | None
    worst_group: str | None
    group_gaps: dict[str, float]
    min_count: int
    rows_used: int
    strata: list[StratumComparison]
    skipped_strata: list[str]


def _labels(values: npt.ArrayLike, name: str) -> pd.Series:
    return pd.Series(np.asarray(values), name=name).astype(str)


def _binary(
    decided: npt.ArrayLike, groups: npt.ArrayLike
) -> tuple[npt.NDArray[np.int_], pd.Series]:
    decisions = np.asarray(decided)
    labels = _labels(groups, "group")
    if decisions.ndim != 1 or len(decisions) != len(labels):
        raise ValueError("decisions and groups must be 1-D and of the same length")
    if len(decisions) == 0:
        raise ValueError("no decisions to measure")
    if not np.isin(decisions, (0, 1)).all():
        raise ValueError("decisions must hold only booleans or 0/1")
    return decisions.astype(int), labels


def _amounts(amounts: npt.ArrayLike, length: int) -> npt.NDArray[np.float64]:
    values = np.asarray(amounts, dtype=float)
    if values.ndim != 1 or len(values) != length:
        raise ValueError("amounts, groups and strata must be 1-D and of the same length")
    if length == 0:
        raise ValueError("no amounts to measure")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("amounts must be finite and non-negative")
    return values


def _ratio(low: float, high: float) -> float:
    """low / high, where two zeros are equal outcomes (ratio 1), not an undefined one."""
    return 1.0 if high == 0.0 else low / high


def selection_rates(decided: npt.ArrayLike, groups: npt.ArrayLike) -> dict[str, float]:
    """Share of each group given a positive decision."""
    decisions, labels = _binary(decided, groups)
    frame = MetricFrame(
        metrics=selection_rate, y_true=decisions, y_pred=decisions, sensitive_features=labels
    )
    return {str(group): float(rate) for group, rate in frame.by_group.items()}


def disparate_impact_ratio(decided: npt.ArrayLike, groups: npt.ArrayLike) -> float:
    """Lowest group selection rate over the highest (the "four-fifths rule" ratio)."""
    decisions, labels = _binary(decided, groups)
    if not decisions.any():
        return 1.0
    return float(
        demographic_parity_ratio(decisions, decisions, sensitive_features=labels.to_numpy())
    )


def group_mean_ratio(amounts: npt.ArrayLike, groups: npt.ArrayLike) -> float:
    """Lowest group mean amount over the highest, with no control for who the groups are."""
    labels = _labels(groups, "group")
    means = pd.Series(_amounts(amounts, len(labels))).groupby(labels.to_numpy()).mean()
    return _ratio(float(means.min()), float(means.max()))


def combine_strata(*labels: npt.ArrayLike) -> list[str]:
    """Cross several stratum labellings (e.g. income band, credit band) into one label per row."""
    if not labels:
        raise ValueError("at least one labelling is needed")
    columns = [_labels(values, f"s{i}") for i, values in enumerate(labels)]
    if len({len(column) for column in columns}) != 1:
        raise ValueError("stratum labellings must be of the same length")
    return [STRATUM_SEPARATOR.join(row) for row in zip(*columns, strict=True)]


def conditional_disparity(
    amounts: npt.ArrayLike,
    groups: npt.ArrayLike,
    strata: npt.ArrayLike,
    *,
    min_count: int = 30,
) -> ConditionalDisparity:
    """Compare every group to the best-off group inside each stratum, weighted by stratum size.

    Only strata where every group has at least ``min_count`` rows are used; the rest are
    reported as skipped, so a gap never rests on a handful of applicants.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    group_labels = _labels(groups, "group")
    stratum_labels = _labels(strata, "stratum")
    if len(stratum_labels) != len(group_labels):
        raise ValueError("amounts, groups and strata must be 1-D and of the same length")
    values = _amounts(amounts, len(group_labels))
    all_groups = sorted(group_labels.unique())

    # A plain group-by rather than fairlearn's MetricFrame with control features: the
    # same means (tests compare them), in about 30 ms instead of 0.85 s on 7,000 rows;
    # sandbox validation computes this for every slicing of every model it compares.
    frame = (
        pd.DataFrame({"stratum": stratum_labels, "group": group_labels, "amount": values})
        .groupby(["stratum", "group"])["amount"]
        .agg(mean="mean", rows="size")
    )

    comparisons: list[StratumComparison] = []
    skipped: list[str] = []
    for stratum in sorted(stratum_labels.unique()):
        per_group = frame.loc[stratum].reindex(all_groups)
        counts = per_group["rows"].fillna(0)
        if (counts < min_count).any():
            skipped.append(stratum)
            continue
        means = {group: float(per_group.at[group, "mean"]) for group in all_groups}
        best_group = max(all_groups, key=lambda group: means[group])
        comparisons.append(
            StratumComparison(
                stratum=stratum,
                rows=int(counts.sum()),
                group_counts={group: int(counts[group]) for group in all_groups},
                group_means=means,
                best_group=best_group,
                relative_gaps={
                    group: 1.0 - _ratio(means[group], means[best_group]) for group in all_groups
                },
            )
        )

    rows_used = sum(comparison.rows for comparison in comparisons)
    group_gaps: dict[str, float] = {}
    relative_gap: float | None = None
    worst_group: str | None = None
    if rows_used:
        group_gaps = {
            group: sum(c.rows * c.relative_gaps[group] for c in comparisons) / rows_used
            for group in all_groups
        }
        relative_gap = max(group_gaps.values())
        if relative_gap > 0:
            worst_group = max(all_groups, key=lambda group: group_gaps[group])
    return ConditionalDisparity(
        relative_gap=relative_gap,
        worst_group=worst_group,
        group_gaps=group_gaps,
        min_count=min_count,
        rows_used=rows_used,
        strata=comparisons,
        skipped_strata=skipped,
    )

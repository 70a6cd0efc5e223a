"""Synthetic applicants for the sandbox: balanced edge cases and counterfactual twins.

Held-out data shows how a model treats the applicants who happen to apply; it says
little about rare strata, and it cannot show what one applicant would have got as a
member of another group. Two generated sets fill those gaps:

* **balanced edge-case profiles**: every protected group x every stratum with the same
  number of applicants, and the same applicants in every group: rare strata (high
  income, no credit history) weigh as much as common ones, and any gap between groups
  comes from the group and its proxies, since nothing else differs.
* **counterfactual pairs**: a real applicant and their twin in another group. Changing
  only the protected attribute proves little when the model never reads it; the
  twin also takes the proxies' values typical of the other group (for the credit
  data: a zip code where that group lives), which is how the bias reaches the model.

The proxy values are read off the data: the most common value of the proxy among the
other group's rows in the same stratum (the group's overall most common value where it
has no rows in that stratum; ties go to the smallest value, so a seed names a suite).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict

from analysis.data import require_columns
from fairness.group_metrics import intersection_labels
from fairness.intervals import Interval, wilson_interval
from fairness.outcomes import combine_strata

ALL_APPLICANTS = "all"  # the one stratum when no strata are given

ProxyValues = dict[str, dict[str, dict[str, object]]]
"""proxy column -> group -> stratum -> the value a member of that group there typically has."""


@dataclass(frozen=True)
class CounterfactualPairs:
    """Row i of ``original`` and row i of ``twin`` are one applicant in two groups."""

    original: pd.DataFrame
    twin: pd.DataFrame
    from_group: npt.NDArray[np.str_]
    to_group: npt.NDArray[np.str_]
    proxy_values: ProxyValues


class DirectionFlips(BaseModel):
    """What moving applicants from one group to another did to their outcomes."""

    model_config = ConfigDict(frozen=True)

    from_group: str
    to_group: str
    pairs: int
    decision_flips: int
    amount_pairs: int
    mean_relative_amount_change: float | None  # signed: -0.35 is "35% less as to_group"


class CounterfactualReport(BaseModel):
    """How much decisions and amounts move when only the group (and its proxies) change.

    ``mean_relative_amount_change`` is the mean of |twin - original| / original over
    pairs granted on both sides (a declined applicant's amount says nothing about the
    amount); the decision flips count everything else. Ideally both are zero.
    """

    model_config = ConfigDict(frozen=True)

    protected: list[str]
    proxies: list[str]
    pairs: int
    decision_flips: int
    flip_rate: Interval
    amount_pairs: int
    mean_relative_amount_change: float | None
    directions: list[DirectionFlips]
    proxy_values: dict[str, dict[str, dict[str, str]]]


def stratum_labels(frame: pd.DataFrame, strata: Sequence[str]) -> npt.NDArray[np.str_]:
    """One stratum label per row (the strata columns crossed), or one stratum for all rows."""
    if not strata:
        return np.full(len(frame), ALL_APPLICANTS)
    return np.asarray(combine_strata(*(frame[column] for column in strata)))


def typical_proxy_values(
    frame: pd.DataFrame,
    *,
    protected: Sequence[str],
    strata: Sequence[str],
    proxies: Sequence[str],
) -> ProxyValues:
    """For every proxy, group and stratum: the value most common among that group's rows there."""
    _check_columns(frame, protected, strata, proxies)
    groups = intersection_labels([frame[column] for column in protected])
    cells = stratum_labels(frame, strata)
    values: ProxyValues = {}
    for proxy in proxies:
        column = frame[proxy]
        per_cell = _modes(column, [groups, cells])
        per_group = _modes(column, groups)
        values[proxy] = {
            str(group): {
                str(stratum): per_cell.get((group, stratum), per_group[group])
                for stratum in np.unique(cells)
            }
            for group in np.unique(groups)
        }
    return values


def balanced_profiles(
    frame: pd.DataFrame,
    *,
    protected: Sequence[str],
    strata: Sequence[str],
    proxies: Sequence[str],
    per_cell: int,
    seed: int,
) -> pd.DataFrame:
    """``per_cell`` applicants for every group x stratum, the same applicants in every group.

    Applicants are drawn from each stratum's real rows (with replacement when the
    stratum has fewer), then each is copied into every group with that group's
    protected values and typical proxy values for the stratum.
    """
    if per_cell < 1:
        raise ValueError(f"per_cell must be at least 1, got {per_cell}")
    proxy_values = typical_proxy_values(frame, protected=protected, strata=strata, proxies=proxies)
    rng = np.random.default_rng(seed)
    cells = stratum_labels(frame, strata)
    members = _group_members(frame, protected)
    copies: list[pd.DataFrame] = []
    for stratum in np.unique(cells):
        rows = np.flatnonzero(cells == stratum)
        chosen = rng.choice(rows, size=per_cell, replace=len(rows) < per_cell)
        base = frame.iloc[np.sort(chosen)]
        for group, values in members.items():
            copies.append(_as_group(base, protected, values, proxy_values, group, stratum))
    return pd.concat(copies, ignore_index=True)


def counterfactual_pairs(
    frame: pd.DataFrame,
    *,
    protected: Sequence[str],
    strata: Sequence[str],
    proxies: Sequence[str],
    seed: int,
    size: int | None = None,
) -> CounterfactualPairs:
    """Every sampled applicant paired with a twin in each other group (``size``: how many).

    The twin keeps every feature but the protected attributes, which become the other
    group's, and the proxies, which take that group's typical value in the
    applicant's stratum. All rows are used when ``size`` is None or covers them.
    """
    if size is not None and size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    # Typical values and the groups to move to come from all rows, not just the sample.
    proxy_values = typical_proxy_values(frame, protected=protected, strata=strata, proxies=proxies)
    members = _group_members(frame, protected)
    if size is not None and size < len(frame):
        picked = np.sort(np.random.default_rng(seed).choice(len(frame), size=size, replace=False))
        frame = frame.iloc[picked]
    groups = intersection_labels([frame[column] for column in protected])
    cells = stratum_labels(frame, strata)
    originals, twins, sources, targets = [], [], [], []
    for target in members:
        movers = groups != target
        if not movers.any():
            continue
        base = frame[movers]
        twin = base.copy()
        for column, value in zip(protected, members[target], strict=True):
            twin[column] = value
        for proxy in proxies:
            twin[proxy] = [proxy_values[proxy][target][cell] for cell in cells[movers]]
        originals.append(base)
        twins.append(twin)
        sources.append(groups[movers])
        targets.append(np.full(int(movers.sum()), target))
    if not twins:
        raise ValueError("counterfactual pairs need at least two groups in the data")
    return CounterfactualPairs(
        original=pd.concat(originals, ignore_index=True),
        twin=pd.concat(twins, ignore_index=True),
        from_group=np.concatenate(sources),
        to_group=np.concatenate(targets),
        proxy_values=proxy_values,
    )


def counterfactual_flip_rate(
    pairs: CounterfactualPairs,
    original: tuple[npt.ArrayLike, npt.ArrayLike],
    twin: tuple[npt.ArrayLike, npt.ArrayLike],
    *,
    protected: Sequence[str],
    proxies: Sequence[str],
    alpha: float,
) -> CounterfactualReport:
    """Share of pairs whose decision flips, and how far granted amounts move.

    ``original`` and ``twin`` are (decided, amount) for ``pairs.original`` and
    ``pairs.twin``. The flip rate has a Wilson interval at level 1 - ``alpha``.
    """
    decided, amount = _outcomes(original, len(pairs.original), "original")
    twin_approved, twin_amount = _outcomes(twin, len(pairs.twin), "twin")
    flipped = decided != twin_approved
    comparable = decided & twin_approved & (amount > 0)
    relative = np.zeros(len(amount))
    relative[comparable] = twin_amount[comparable] / amount[comparable] - 1.0
    directions = []
    for source, target in sorted(set(zip(pairs.from_group, pairs.to_group, strict=True))):
        rows = (pairs.from_group == source) & (pairs.to_group == target)
        moved = rows & comparable
        directions.append(
            DirectionFlips(
                from_group=str(source),
                to_group=str(target),
                pairs=int(rows.sum()),
                decision_flips=int(flipped[rows].sum()),
                amount_pairs=int(moved.sum()),
                mean_relative_amount_change=float(relative[moved].mean()) if moved.any() else None,
            )
        )
    return CounterfactualReport(
        protected=list(protected),
        proxies=list(proxies),
        pairs=len(flipped),
        decision_flips=int(flipped.sum()),
        flip_rate=wilson_interval(int(flipped.sum()), len(flipped), alpha=alpha),
        amount_pairs=int(comparable.sum()),
        mean_relative_amount_change=(
            float(np.abs(relative[comparable]).mean()) if comparable.any() else None
        ),
        directions=directions,
        proxy_values={
            proxy: {
                group: {stratum: str(value) for stratum, value in by_stratum.items()}
                for group, by_stratum in by_group.items()
            }
            for proxy, by_group in pairs.proxy_values.items()
        },
    )


def _modes(
    column: pd.Series, keys: npt.NDArray[np.str_] | list[npt.NDArray[np.str_]]
) -> dict[Any, object]:
    """Most common value of ``column`` per key (the smallest on ties, so a seed names a suite)."""

    def mode(values: pd.Series) -> object:
        counts = values.value_counts()
        return min(counts.index[counts == counts.max()])

    return dict(column.groupby(keys).agg(mode).to_dict())


def _group_members(frame: pd.DataFrame, protected: Sequence[str]) -> dict[str, tuple[object, ...]]:
    """Each intersection label and the protected values (in their own types) that make it up."""
    labels = intersection_labels([frame[column] for column in protected])
    firsts = frame[list(protected)].groupby(labels, sort=True).first()
    return {
        str(label): tuple(row)
        for label, row in zip(firsts.index, firsts.itertuples(index=False), strict=True)
    }


def _as_group(
    base: pd.DataFrame,
    protected: Sequence[str],
    values: tuple[object, ...],
    proxy_values: ProxyValues,
    group: str,
    stratum: str,
) -> pd.DataFrame:
    copy = base.copy()
    for column, value in zip(protected, values, strict=True):
        copy[column] = value
    for proxy, by_group in proxy_values.items():
        copy[proxy] = by_group[group][stratum]
    return copy


def _check_columns(
    frame: pd.DataFrame, protected: Sequence[str], strata: Sequence[str], proxies: Sequence[str]
) -> None:
    if not protected:
        raise ValueError("at least one protected attribute is needed")
    require_columns(list(frame.columns), [*protected, *strata, *proxies], "held-out data")
    overlap = set(proxies) & (set(protected) | set(strata))
    if overlap:
        raise ValueError(
            f"proxies {sorted(overlap)} are also protected attributes or strata; a proxy is "
            "a feature that stands in for a protected attribute"
        )


def _outcomes(
    outcomes: tuple[npt.ArrayLike, npt.ArrayLike], rows: int, name: str
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    decided = np.asarray(outcomes[0])
    amount = np.asarray(outcomes[1], dtype=np.float64)
    if decided.shape != (rows,) or amount.shape != (rows,):
        raise ValueError(f"{name} outcomes must hold one decision and one amount per pair ({rows})")
    return decided.astype(bool), amount

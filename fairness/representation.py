"""Who is in the data: counts, shares, label base rates and missingness per protected group.

A model learns the world its training data shows it. A group that is scarce, whose
labels were recorded at a different rate, or whose features are more often missing,
is a group the model will serve worse, whatever the algorithm. This is measured for
every protected attribute alone and for every intersection of two or more of them,
because under-representation hides in intersections ("B|F") that each attribute alone
looks fine on.

Groups are the observed values; an intersection's groups are every combination of its
attributes' observed values, so a combination with no rows at all is reported as a
group of 0 instead of silently vanishing. A row whose value of an attribute is missing
is "unknown" for every slice using that attribute and left out of its shares, which
are comparable to a reference population's only among people whose group is known.

Counting goes through integer codes and ``np.bincount``: a million rows and dozens of
columns take well under a second. Pure: no I/O, no clocks.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict

INTERSECTION_SEPARATOR = "|"

Reference = Mapping[str, Mapping[str, float]]


class LabelError(ValueError):
    """The label column cannot give a base rate: it is neither boolean nor numeric."""


class GroupRepresentation(BaseModel):
    """One group of one slice."""

    model_config = ConfigDict(frozen=True)

    group: str  # a value, or values joined by "|" for an intersection
    count: int
    share: float | None  # of the slice's known rows; None when none is known
    reference_share: float | None
    share_ratio: float | None  # share / reference share; None without a positive reference
    share_difference: float | None  # share - reference share
    label_rows: int  # rows of the group with a known label
    label_rate: float | None  # mean label: the base rate of a binary label
    missingness: dict[str, float]  # column -> share of the group's rows missing it
    too_small: bool  # fewer than min_group_size rows: too small to judge


class SliceRepresentation(BaseModel):
    """A protected attribute, or an intersection of several, and its groups."""

    model_config = ConfigDict(frozen=True)

    name: str  # attributes joined by "|"
    attributes: list[str]
    known_rows: int
    unknown_rows: int  # rows missing at least one of the attributes
    groups: list[GroupRepresentation]
    too_small: list[str]


class Representation(BaseModel):
    """Representation of every protected slice of a data set."""

    model_config = ConfigDict(frozen=True)

    rows: int
    protected: list[str]
    label: str | None
    label_rate: float | None  # over every row with a known label
    min_group_size: int
    columns_with_missing: list[str]  # the columns whose missingness is broken down by group
    complete_columns: list[str]  # audited columns with no missing value at all
    slices: list[SliceRepresentation]


def slices_of(protected: Sequence[str]) -> list[tuple[str, ...]]:
    """Every attribute alone, then every combination of two or more, in a stable order."""
    return [
        combination
        for size in range(1, len(protected) + 1)
        for combination in itertools.combinations(protected, size)
    ]


def label_values(values: pd.Series) -> npt.NDArray[np.float64]:
    """A label column as floats (booleans as 0/1), missing as NaN; its mean is the base rate."""
    try:  # booleans with gaps arrive as objects, which convert too
        numbers: npt.NDArray[np.float64] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise LabelError(
            f"label column {values.name!r} must be boolean or numeric to give a base rate, "
            f"got {values.dtype}"
        ) from error
    return numbers


def represent(
    frame: pd.DataFrame,
    protected: Sequence[str],
    *,
    label: str | None = None,
    columns: Sequence[str] | None = None,
    min_group_size: int = 30,
    reference: Reference | None = None,
) -> Representation:
    """Representation of every protected attribute and intersection of ``frame``.

    ``columns`` are the columns whose missingness is reported (default: every column that
    is not protected). ``reference`` gives a reference population's shares, keyed by slice
    name (an attribute, or attributes joined by "|") and then by group.
    """
    _validate(frame, protected, label, columns, min_group_size)
    audited = [c for c in frame.columns if c not in protected] if columns is None else columns
    reference = reference or {}
    _validate_reference(reference, protected)

    codes: dict[str, npt.NDArray[np.intp]] = {}
    values: dict[str, list[str]] = {}
    for attribute in protected:
        raw, uniques = pd.factorize(frame[attribute], sort=True)
        codes[attribute] = np.asarray(raw, dtype=np.intp)
        values[attribute] = [str(value) for value in uniques]
    labels = label_values(frame[label]) if label is not None else None
    missing = frame[list(audited)].isna().to_numpy()
    with_missing = missing.any(axis=0)
    columns_with_missing = [c for c, gaps in zip(audited, with_missing, strict=True) if gaps]

    slices = [
        _slice(
            attributes,
            [codes[a] for a in attributes],
            [values[a] for a in attributes],
            labels,
            missing[:, with_missing],
            columns_with_missing,
            min_group_size,
            reference.get(INTERSECTION_SEPARATOR.join(attributes), {}),
        )
        for attributes in slices_of(protected)
    ]
    label_known = labels[~np.isnan(labels)] if labels is not None else None
    return Representation(
        rows=len(frame),
        protected=list(protected),
        label=label,
        label_rate=float(label_known.mean())
        if label_known is not None and label_known.size
        else None,
        min_group_size=min_group_size,
        columns_with_missing=columns_with_missing,
        complete_columns=[c for c in audited if c not in columns_with_missing],
        slices=slices,
    )


def _slice(
    attributes: tuple[str, ...],
    codes: list[npt.NDArray[np.intp]],
    values: list[list[str]],
    labels: npt.NDArray[np.float64] | None,
    missing: npt.NDArray[np.bool_],
    missing_columns: list[str],
    min_group_size: int,
    reference: Mapping[str, float],
) -> SliceRepresentation:
    known = np.logical_and.reduce([c >= 0 for c in codes])
    shape = tuple(len(v) for v in values)
    group_codes = np.ravel_multi_index(tuple(c[known] for c in codes), shape)
    size = int(np.prod(shape))
    counts = np.bincount(group_codes, minlength=size)

    label_rows = np.zeros(size, dtype=np.intp)
    label_sums = np.zeros(size)
    if labels is not None:
        known_labels = labels[known]
        has_label = ~np.isnan(known_labels)
        label_rows = np.bincount(group_codes[has_label], minlength=size)
        label_sums = np.asarray(
            np.bincount(group_codes[has_label], weights=known_labels[has_label], minlength=size),
            dtype=np.float64,
        )
    known_missing = missing[known]
    missing_counts = {
        column: np.bincount(group_codes, weights=known_missing[:, i], minlength=size)
        for i, column in enumerate(missing_columns)
    }

    known_rows = int(known.sum())
    names = [INTERSECTION_SEPARATOR.join(combo) for combo in itertools.product(*values)]
    groups = [
        _group(
            name,
            int(counts[i]),
            known_rows,
            reference.get(name),
            int(label_rows[i]),
            float(label_sums[i]),
            {column: float(m[i]) for column, m in missing_counts.items()},
            min_group_size,
        )
        for i, name in enumerate(names)
    ]
    groups += [
        _group(name, 0, known_rows, share, 0, 0.0, {}, min_group_size)
        for name, share in sorted(reference.items())
        if name not in names
    ]
    return SliceRepresentation(
        name=INTERSECTION_SEPARATOR.join(attributes),
        attributes=list(attributes),
        known_rows=known_rows,
        unknown_rows=int(known.size - known_rows),
        groups=groups,
        too_small=[g.group for g in groups if g.too_small],
    )


def _group(
    name: str,
    count: int,
    known_rows: int,
    reference_share: float | None,
    label_rows: int,
    label_sum: float,
    missing_counts: dict[str, float],
    min_group_size: int,
) -> GroupRepresentation:
    share = count / known_rows if known_rows else None
    ratio = difference = None
    if share is not None and reference_share is not None:
        difference = share - reference_share
        ratio = share / reference_share if reference_share > 0 else None
    return GroupRepresentation(
        group=name,
        count=count,
        share=share,
        reference_share=reference_share,
        share_ratio=ratio,
        share_difference=difference,
        label_rows=label_rows,
        label_rate=label_sum / label_rows if label_rows else None,
        missingness={c: m / count for c, m in missing_counts.items()} if count else {},
        too_small=count < min_group_size,
    )


def _validate(
    frame: pd.DataFrame,
    protected: Sequence[str],
    label: str | None,
    columns: Sequence[str] | None,
    min_group_size: int,
) -> None:
    if not protected:
        raise ValueError("at least one protected attribute is needed")
    if len(set(protected)) != len(protected):
        raise ValueError(f"protected attributes repeat: {list(protected)}")
    needed = [*protected, *([label] if label is not None else []), *(columns or [])]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise ValueError(f"the frame lacks column(s) {absent}")
    if min_group_size < 1:
        raise ValueError(f"min_group_size must be at least 1, got {min_group_size}")


def _validate_reference(reference: Reference, protected: Sequence[str]) -> None:
    names = {INTERSECTION_SEPARATOR.join(s) for s in slices_of(protected)}
    for name, shares in reference.items():
        if name not in names:
            raise ValueError(f"reference names {name!r}, which is not a protected slice")
        if any(not 0.0 <= share <= 1.0 for share in shares.values()):
            raise ValueError(f"reference shares of {name!r} must lie between 0 and 1")
        if sum(shares.values()) > 1.0 + 1e-9:
            raise ValueError(f"reference shares of {name!r} add up to more than 1")

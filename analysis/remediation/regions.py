"""Group-balanced regions: a categorical proxy coarsened until it no longer tells the group.

The ``transform_proxies`` strategy replaces a categorical proxy (whatever its name: a
postcode, a school, a branch) by a few regions, each a set of its categories whose
protected-group mix is as close as possible to the population's. The transformed
feature says next to nothing about the group (its Cramér's V with the group is recorded
before and after) while it keeps a coarse version of what the category meant.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats.contingency import association
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder


def balanced_regions(categories: pd.Series, groups: npt.ArrayLike, regions: int) -> dict[Any, int]:
    """Merge categories into at most ``regions`` regions whose group mix matches the population.

    Each region aims at an equal share of every group's rows; categories, largest first,
    go to the region whose counts they bring closest to that target (L1 distance). A region
    of the population's own mix says nothing about group membership, so the model can no
    longer read the group off the region, whatever else the region says.
    """
    table = pd.crosstab(categories.to_numpy(), np.asarray(groups))
    target = table.sum(axis=0).to_numpy(dtype=np.float64) / regions
    filled = np.zeros((regions, table.shape[1]))
    assignment: dict[Any, int] = {}
    for category in table.sum(axis=1).sort_values(ascending=False, kind="stable").index:
        counts = table.loc[category].to_numpy(dtype=np.float64)
        cost = np.abs(filled + counts - target).sum(axis=1) - np.abs(filled - target).sum(axis=1)
        region = int(np.argmin(cost))
        filled[region] += counts
        assignment[category] = region
    return assignment


def region_encoder(assignment: dict[Any, int]) -> Pipeline:
    """Category -> region -> one-hot, in plain scikit-learn and numpy (the gateway needs no more).

    The categories are coded in region order, so each region is a run of codes and
    ``np.digitize`` on the runs' starts maps a code to its region; an unseen category
    (code -1) falls before every run and one-hot encodes to all zeros.
    """
    order = sorted(assignment, key=lambda category: (assignment[category], str(category)))
    codes = pd.Series(range(len(order)), index=[assignment[c] for c in order])
    starts = codes.groupby(level=0).min().to_numpy()
    return Pipeline(
        [
            (
                "code",
                OrdinalEncoder(
                    categories=[np.asarray(order, dtype=object)],
                    handle_unknown="use_encoded_value",
                    unknown_value=-1,
                ),
            ),
            (
                "region",
                FunctionTransformer(
                    np.digitize, kw_args={"bins": starts}, feature_names_out="one-to-one"
                ),
            ),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )


def cramers_v(values: pd.Series, groups: npt.ArrayLike) -> float:
    """How much ``values`` tell the group: 0 nothing, 1 everything."""
    table = pd.crosstab(values.to_numpy(), np.asarray(groups)).to_numpy()
    return 0.0 if min(table.shape) < 2 else float(association(table, method="cramer"))

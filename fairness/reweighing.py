"""Kamiran-Calders reweighing: instance weights that make group and label independent.

Historical data in which one group was approved less often teaches a model that the group
(or its proxies) predicts refusal. Reweighing gives each (group, label) cell the weight
P(group) P(label) / P(group, label): under-represented cells (approved members of the
disadvantaged group) count more, over-represented ones less, and in the weighted data the
label rate is the same in every group while each group keeps its size and the label its
overall rate. Kamiran & Calders, "Data preprocessing techniques for classification without
discrimination", Knowledge and Information Systems 33 (2012). fairlearn has no reweighing,
hence this function; it is passed to an estimator as ``sample_weight``.

Pure function of its inputs: no I/O, no clocks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd


def kamiran_calders_weights(
    groups: npt.ArrayLike, labels: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """One weight per row: P(group) P(label) / P(group, label), all estimated from the rows.

    The weights sum to the number of rows. Only cells that occur get a weight, so there is
    no division by zero; a cell that never occurs cannot be weighted into existence.
    """
    group_array, label_array = np.asarray(groups), np.asarray(labels)
    if group_array.ndim != 1 or label_array.shape != group_array.shape:
        raise ValueError("groups and labels must be 1-D and of the same length")
    if len(group_array) == 0:
        raise ValueError("no rows to weigh")
    group_values = pd.Series(group_array).astype(str)
    label_values = pd.Series(label_array).astype(str)
    p_group = group_values.map(group_values.value_counts(normalize=True))
    p_label = label_values.map(label_values.value_counts(normalize=True))
    cells = pd.DataFrame({"group": group_values, "label": label_values})
    p_cell = cells.groupby(["group", "label"])["group"].transform("size") / len(cells)
    return np.asarray(p_group * p_label / p_cell, dtype=np.float64)

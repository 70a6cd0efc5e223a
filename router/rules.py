"""Answering with declarative fallback rules (:mod:`contracts.fallback_rules`), in bulk.

Evaluated over a DataFrame at once: each rule's conditions become one boolean mask,
and a row takes the answer of the first rule whose mask is true for it (``otherwise``
where none is). A batch of ten thousand rows costs a few vectorised comparisons per
rule, not ten thousand Python calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.scoring import Scores
from contracts.fallback_rules import Comparison, FallbackRuleSet


def _holds(column: pd.Series, comparison: Comparison) -> npt.NDArray[np.bool_]:
    mask = np.ones(len(column), dtype=bool)
    for operator, value in comparison.operators().items():
        if operator == "lt":
            mask &= (column < value).to_numpy()
        elif operator == "le":
            mask &= (column <= value).to_numpy()
        elif operator == "gt":
            mask &= (column > value).to_numpy()
        elif operator == "ge":
            mask &= (column >= value).to_numpy()
        elif operator == "eq":
            mask &= (column == value).to_numpy()
        elif operator == "ne":
            mask &= (column != value).to_numpy()
        else:  # "in"
            mask &= column.isin(value).to_numpy()
    return mask


@dataclass(frozen=True)
class RulesEngine:
    """A validated rule set and the model outcomes it answers (``decision``, ``amount``)."""

    rules: FallbackRuleSet
    decides: bool
    grants: bool

    @property
    def version(self) -> str:
        return self.rules.version

    def score(self, rows: pd.DataFrame) -> Scores:
        """The rules' answer for every row, in the same shape a model's scores have."""
        count = len(rows)
        chosen = np.full(count, len(self.rules.rules), dtype=np.int64)  # index of `otherwise`
        open_rows = np.ones(count, dtype=bool)
        for index, rule in enumerate(self.rules.rules):
            if not open_rows.any():
                break
            mask = open_rows.copy()
            for feature, comparison in rule.when.items():
                mask &= _holds(rows[feature], comparison)
            chosen[mask] = index
            open_rows &= ~mask
        answers = [*self.rules.rules, self.rules.otherwise]
        decisions = amounts = None
        if self.decides:
            table = np.array([bool(a.decision) for a in answers], dtype=bool)
            decisions = table[chosen]
        if self.grants:
            table_amounts = np.array([float(a.amount or 0.0) for a in answers], dtype=float)
            amounts = table_amounts[chosen]
        return Scores(decision=decisions, amount=amounts)

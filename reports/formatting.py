"""Numbers as a reader should see them: fixed precision, intervals in brackets, dashes
for what was not measured (never an empty cell that could be mistaken for zero)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from fairness.intervals import Interval

MISSING = "—"


def number(value: float | None, percent: bool = False) -> str:
    if value is None:
        return MISSING
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.1%}" if percent else f"{value:.3f}"


def amount(value: float | None) -> str:
    """A mean amount in the outcome's own unit: two decimals, thousands separated."""
    return MISSING if value is None else f"{value:,.2f}"


def interval(value: Interval | None, percent: bool = False) -> str:
    if value is None:
        return MISSING
    return f"[{number(value.lower, percent)}, {number(value.upper, percent)}]"


def counts(values: Mapping[str, int]) -> str:
    return ", ".join(f"{name}: {count:,}" for name, count in values.items()) or MISSING


def moment(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else MISSING

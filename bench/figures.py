"""The few statistics every benchmark prints, computed one way."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 <= q <= 1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def p50_p99(values: list[float]) -> tuple[float, float]:
    """Median and 99th percentile; ``(0, 0)`` for nothing measured."""
    return (statistics.median(values), percentile(values, 0.99)) if values else (0.0, 0.0)

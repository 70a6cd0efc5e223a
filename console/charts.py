"""The canary chart: each comparison's estimate and interval over the looks, as SVG.

Drawn on the server from the trail's ``canary.analysis`` records, so the page needs no
script. One small panel per metric and comparison (e.g. the B/A disparate-impact ratio),
with the threshold as a dashed line; points are coloured by the look's verdict for that
test and also carry a text title, so colour is never the only signal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from audit.records import AuditRecord

WIDTH, HEIGHT, PAD = 640, 160, 36
COLOURS = {"pass": "#1a7f37", "breach": "#b42318", "inconclusive": "#6b5900"}


@dataclass
class Point:
    look: int
    estimate: float
    low: float | None
    high: float | None
    verdict: str


@dataclass
class Series:
    metric: str
    comparison: str
    threshold: float
    bound: str
    points: list[Point] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.metric} {self.comparison} ({self.bound} {self.threshold:g})"


def series_from_trail(records: Sequence[AuditRecord]) -> list[Series]:
    """Every (metric, comparison) seen in the incident's looks, points in look order."""
    by_key: dict[tuple[str, str], Series] = {}
    look_number = 0
    for record in records:
        if record.kind != "canary.analysis":
            continue
        look_number += 1
        detail = json.loads(record.detail)
        for result in detail.get("analysis", {}).get("results", []):
            estimate = result.get("estimate")
            if estimate is None:
                continue
            key = (str(result["metric"]), str(result["comparison"]))
            series = by_key.setdefault(
                key, Series(key[0], key[1], float(result["threshold"]), str(result["bound"]))
            )
            interval = result.get("interval") or {}
            series.points.append(
                Point(
                    look_number,
                    float(estimate),
                    _number(interval.get("lower")),
                    _number(interval.get("upper")),
                    str(result.get("verdict", "")),
                )
            )
    return list(by_key.values())


def _number(value: object) -> float | None:
    """A finite bound, or None (an infinite upper bound is drawn as open)."""
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def svg(series: Series) -> Markup:
    """One panel: intervals as vertical bars, estimates as dots, the threshold dashed."""
    values = [series.threshold]
    for p in series.points:
        values += [v for v in (p.estimate, p.low, p.high) if v is not None]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    low, high = low - span * 0.1, high + span * 0.1
    n = max(len(series.points), 1)

    def x(i: int) -> float:
        return PAD + (WIDTH - 2 * PAD) * (i / max(n - 1, 1))

    def y(v: float) -> float:
        return HEIGHT - PAD / 2 - (HEIGHT - PAD) * (v - low) / (high - low)

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart" '
        f'aria-label="{escape(series.title)} over {len(series.points)} looks">',
        f"<title>{escape(series.title)}</title>",
        f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(series.threshold):.1f}" '
        f'y2="{y(series.threshold):.1f}" class="threshold" stroke-dasharray="6 4"/>',
        f'<text x="2" y="{y(high) + 10:.1f}" class="axis">{high:.3g}</text>',
        f'<text x="2" y="{y(low):.1f}" class="axis">{low:.3g}</text>',
    ]
    # Thousands of looks: draw at most ~720 points, evenly thinned, so the page stays light.
    step = max(1, len(series.points) // 720)
    bars: dict[str, list[str]] = {}
    dots: dict[str, list[str]] = {}
    for i, point in enumerate(series.points[::step]):
        cx = x(i * step)
        colour = COLOURS.get(point.verdict, "#444")
        if point.low is not None and point.high is not None:
            bars.setdefault(colour, []).append(f"M{cx:.1f} {y(point.low):.1f}V{y(point.high):.1f}")
        dots.setdefault(colour, []).append(
            f'<circle cx="{cx:.1f}" cy="{y(point.estimate):.1f}" r="2.5">'
            f"<title>look {point.look}: {point.estimate:.4g} {escape(point.verdict)}</title>"
            "</circle>"
        )
    # One path of interval bars and one group of dots per verdict colour, dots drawn over
    # bars: a 90-day canary's 720 looks cost a few bytes each, not an element's attributes.
    for colour, segments in bars.items():
        parts.append(
            f'<path d="{"".join(segments)}" stroke="{colour}" fill="none" class="interval"/>'
        )
    for colour, circles in dots.items():
        parts.append(f'<g fill="{colour}">{"".join(circles)}</g>')
    parts.append("</svg>")
    # Every string interpolated above is escaped (titles, verdicts) or a number.
    return Markup("".join(parts))  # noqa: S704

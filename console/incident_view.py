"""What the incident page shows, built from the incident's state and its audit trail."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from audit.records import AuditRecord
from console.charts import Series, series_from_trail
from contracts.canary import RampStepProgress

# Looks are many (one an hour for weeks); they are drawn in the chart, not listed.
LOOK_KIND = "canary.analysis"
CHARTED_KINDS = frozenset({LOOK_KIND})


@dataclass
class TimelineEntry:
    at: datetime
    kind: str
    actor: str
    step: str | None
    summary: str


@dataclass
class BakeClock:
    baked: timedelta
    target: timedelta
    paused_by: str | None

    @property
    def percent_done(self) -> float:
        total = self.target.total_seconds()
        return 100.0 if total <= 0 else min(100.0, 100 * self.baked.total_seconds() / total)


def timeline(records: Sequence[AuditRecord]) -> list[TimelineEntry]:
    """Entries for a page of the trail (read without the charted kinds)."""
    return [TimelineEntry(r.at, r.kind, r.actor, r.step, summary(r.detail)) for r in records]


def summary(detail: str, limit: int = 240) -> str:
    """A short line of a record's detail (its JSON): its scalar fields, in order."""
    try:
        data = json.loads(detail)
    except ValueError:
        return detail[:limit]
    if not isinstance(data, dict):
        return str(data)[:limit]
    parts = [f"{k}: {v}" for k, v in data.items() if isinstance(v, str | int | float | bool)]
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def canary_series(records: Sequence[AuditRecord]) -> list[Series]:
    return series_from_trail(records)


def bake_clock(progress: RampStepProgress | None, now: datetime | None = None) -> BakeClock | None:
    """How long the running ramp step has baked, counting the clock still running."""
    if progress is None:
        return None
    baked = progress.baked
    if progress.clock_running_since is not None:
        baked += (now or datetime.now(UTC)) - progress.clock_running_since
    return BakeClock(baked=baked, target=progress.bake_target, paused_by=progress.paused_by)

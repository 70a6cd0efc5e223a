"""What the fallback really decided while it served: the "during containment" evidence.

The impact assessment reads the model's live decisions over the containment window,
from the model's declared decision source through the worker's metrics providers (the
same ones the canary and the drift monitor read), and judges them group against group
like the monitor does: each group's decisions, and the gaps with their intervals. The
workflow only says which window; the reading is an activity's.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from contracts.fairness import WindowAnalysis
from contracts.monitoring import MonitoringPolicy
from contracts.targets import RoutedTo

ANALYSE_FALLBACK_WINDOW = "analyse_fallback_window"


class FallbackWindowRequest(RoutedTo):
    incident_id: str
    model: str
    since: datetime = Field(description="when the route began serving the fallback")
    until: datetime
    policy: MonitoringPolicy = Field(
        description="the model's monitoring policy: its provider, bands and alpha"
    )


class FallbackWindow(BaseModel):
    """The fallback's live decisions over ``[since, until)``, judged; or why there are none."""

    since: datetime | None = None
    until: datetime | None = None
    provider: str | None = Field(default=None, description="the provider that answered")
    decisions: int = 0
    analysis: WindowAnalysis | None = Field(
        default=None, description="None when no decision was there to judge"
    )
    unavailable: str | None = Field(
        default=None,
        description="why the window could not be read or judged (no containment, no "
        "decisions, the source refused): said in the report, never replaced by numbers",
    )

"""The canary's analysis: one look at a ramp step's live decisions, judged per group.

The provider (decision log, Prometheus, ...) turns the window into decision cells;
:func:`fairness.live.analyse_window` judges them. Both are cheap next to the traffic
they summarise, so the activity needs no heartbeat.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity

from activities.providers import DecisionWindows, Manifests
from contracts.canary import CANARY_ANALYSIS, AnalysisRequest, CanaryAnalysis
from fairness.live import analyse_window
from metrics.provider import MetricsProvider


class CanaryActivities:
    def __init__(
        self, providers: Mapping[str, MetricsProvider], manifests: Manifests | None = None
    ) -> None:
        """``manifests`` (the registry's lookup) says which outcomes each model makes."""
        self._windows = DecisionWindows(providers, manifests)

    @activity.defn(name=CANARY_ANALYSIS)
    async def canary_analysis(self, request: AnalysisRequest) -> CanaryAnalysis:
        window = await self._windows.read(
            request.provider,
            request.router_ref(),
            request.model,
            request.candidate_version,
            request.since,
            request.until,
        )
        analysis = analyse_window(
            window.cells,
            request.thresholds,
            alpha=request.alpha,
            **await self._windows.outcomes(request.model),
        )
        return CanaryAnalysis(
            look=request.look,
            since=request.since,
            until=request.until,
            provider=window.provider,
            decisions=window.decisions,
            analysis=analysis,
        )

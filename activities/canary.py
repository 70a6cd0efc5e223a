"""The canary's analysis: one look at a ramp step's live decisions, judged per group.

The provider (decision log, Prometheus, ...) turns the window into decision cells;
:func:`fairness.live.analyse_window` judges them. Both are cheap next to the traffic
they summarise, so the activity needs no heartbeat.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity

from activities.providers import Manifests, outcomes_made, select_provider, undeclared_source
from activities.routing import unknown_target
from config.targets import UnknownTarget
from contracts.canary import CANARY_ANALYSIS, AnalysisRequest, CanaryAnalysis
from fairness.live import analyse_window
from metrics.provider import MetricsProvider, UndeclaredSource


class CanaryActivities:
    def __init__(
        self, providers: Mapping[str, MetricsProvider], manifests: Manifests | None = None
    ) -> None:
        """``manifests`` (the registry's lookup) says which outcomes each model makes."""
        self._providers = dict(providers)
        self._manifests = manifests

    @activity.defn(name=CANARY_ANALYSIS)
    async def canary_analysis(self, request: AnalysisRequest) -> CanaryAnalysis:
        provider = select_provider(self._providers, request.provider)
        try:
            window = await provider.window(
                request.router_ref(),
                request.model,
                request.candidate_version,
                request.since,
                request.until,
            )
        except UnknownTarget as error:
            raise unknown_target(error) from None
        except UndeclaredSource as error:
            raise undeclared_source(error) from None
        analysis = analyse_window(
            window.cells,
            request.thresholds,
            alpha=request.alpha,
            **await outcomes_made(self._manifests, request.model),
        )
        return CanaryAnalysis(
            look=request.look,
            since=request.since,
            until=request.until,
            provider=window.provider,
            decisions=window.decisions,
            analysis=analysis,
        )

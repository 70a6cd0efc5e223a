"""The "during containment" evidence: the fallback's live decisions, read and judged.

Read from the model's declared decision source through the metrics provider its
monitoring policy names (the drift monitor's), and judged group against group by the
monitor's own analysis (:func:`fairness.drift.judge_monitor_window`): each group's
decisions, the gaps and their intervals. A window with no decision in it says so; a
source that cannot be reached is retried, then said to be unavailable by the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity

from activities.providers import DecisionWindows, Manifests
from contracts.fallback_window import ANALYSE_FALLBACK_WINDOW, FallbackWindow, FallbackWindowRequest
from fairness.drift import judge_monitor_window
from metrics.provider import NO_CANDIDATE, MetricsProvider


class FallbackWindowActivities:
    def __init__(
        self, providers: Mapping[str, MetricsProvider], manifests: Manifests | None = None
    ) -> None:
        """``manifests`` (the registry's lookup) says which outcomes each model makes."""
        self._windows = DecisionWindows(providers, manifests)

    @activity.defn(name=ANALYSE_FALLBACK_WINDOW)
    async def analyse_fallback_window(self, request: FallbackWindowRequest) -> FallbackWindow:
        window = await self._windows.read(
            request.policy.provider,
            request.router_ref(),
            request.model,
            NO_CANDIDATE,
            request.since,
            request.until,
        )
        read = FallbackWindow(
            since=window.covered_since or request.since,
            until=window.covered_until or request.until,
            provider=window.provider,
            decisions=window.decisions,
        )
        if window.decisions == 0:
            return read.model_copy(
                update={"unavailable": f"{window.provider} holds no live decision of the window"}
            )
        fairness, _, _ = judge_monitor_window(
            window.cells,
            request.policy,
            None,
            **await self._windows.outcomes(request.model),
        )
        return read.model_copy(update={"analysis": fairness})

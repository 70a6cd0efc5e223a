"""The drift monitor's look at a model's live decisions: one rolling window, judged.

The provider turns the window into decision cells, :mod:`fairness.drift` judges them
against the model's monitoring policy; the watch workflow decides what to do with
the verdict (count consecutive breaches, contain, open an incident).
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity

from activities.providers import DecisionWindows, Manifests
from contracts.monitoring import EvaluationRequest, EvaluationResult, MonitorEvaluation
from contracts.watch import EVALUATE_WINDOW
from fairness.drift import judge_monitor_window, reference_from
from fairness.live import MetricVerdict
from metrics.provider import NO_CANDIDATE, MetricsProvider


class MonitorActivities:
    def __init__(
        self, providers: Mapping[str, MetricsProvider], manifests: Manifests | None = None
    ) -> None:
        """``manifests`` (the registry's lookup) says which outcomes each model makes."""
        self._windows = DecisionWindows(providers, manifests)

    @activity.defn(name=EVALUATE_WINDOW)
    async def evaluate_monitor_window(self, request: EvaluationRequest) -> EvaluationResult:
        policy = request.policy
        window = await self._windows.read(
            policy.provider,
            request.router_ref(),
            request.model,
            NO_CANDIDATE,
            request.since,
            request.until,
        )
        fairness, drift, verdict = judge_monitor_window(
            window.cells,
            policy,
            request.reference,
            **await self._windows.outcomes(request.model),
        )
        reference = request.reference
        if reference is None and _settled(fairness.samples, policy.min_drift_samples, verdict):
            reference = reference_from(window.cells, request.since, request.until)
        headline = fairness.headline
        breached = [d.reason for d in drift if d.verdict == MetricVerdict.BREACH]
        if breached:
            headline = f"{headline}; drift: {'; '.join(breached)}"
        return EvaluationResult(
            evaluation=MonitorEvaluation(
                at=request.until,
                since=request.since,
                until=request.until,
                provider=window.provider,
                decisions=window.decisions,
                verdict=verdict,
                headline=headline,
                fairness=fairness,
                drift=drift,
            ),
            reference=reference,
        )


def _settled(samples: dict[str, dict[str, int]], needed: int, verdict: MetricVerdict) -> bool:
    """Whether this window may become the drift reference: fair, and enough of every group."""
    groups = samples.get("candidate", {})
    return (
        verdict == MetricVerdict.PASS
        and bool(groups)
        and all(count >= needed for count in groups.values())
    )

"""`impact_assessment` (A): the Algorithmic Impact Assessment that sign-offs bind to.

Before writing it, the step has the fallback's live decisions over the containment
window read and judged (an activity: the workflow only names the window), so the
assessment's "during containment" evidence is what the fallback really decided.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.analysis import IMPACT_ASSESSMENT, Assessment, AssessmentInput
    from contracts.fallback_window import (
        ANALYSE_FALLBACK_WINDOW,
        FallbackWindow,
        FallbackWindowRequest,
    )
    from contracts.routing import Serving
    from playbooks.steps import ImpactAssessmentStep
    from workflows.failures import failure_text
    from workflows.options import activity_options, step_options
    from workflows.steps.base import StepContext, StepOutcome

FALLBACK_WINDOW_PATCH = "fallback-window-in-assessment"
"""Patch id: assessments written before it had no reading of the fallback's decisions."""


async def run(ctx: StepContext, step: ImpactAssessmentStep) -> StepOutcome:
    incident = ctx.incident
    if workflow.patched(FALLBACK_WINDOW_PATCH):
        ctx.state.findings.fallback_window = await fallback_window(ctx, step)
    assessment: Assessment = await workflow.execute_activity(
        IMPACT_ASSESSMENT,
        AssessmentInput(
            incident_id=incident.incident_id,
            model=incident.model,
            step=step,
            summary=incident.summary,
            findings=ctx.state.findings,
        ),
        result_type=Assessment,
        activity_id=ctx.activity_id(step.name),
        **step_options(step),
    )
    ctx.state.findings.assessment = assessment
    return StepOutcome(f"{assessment.headline} ({assessment.digest})")


async def fallback_window(ctx: StepContext, step: ImpactAssessmentStep) -> FallbackWindow:
    """The fallback's decisions since the route began serving it, until now; or why not.

    The window starts at the route's own time of change (the router's clock, the one its
    decisions are stamped with). A source that stays unreachable through the step's
    retries does not stop the assessment: the report says the evidence is unavailable."""
    route = ctx.state.route_now
    if route is None or route.serving is not Serving.FALLBACK:
        serving = route.serving.value if route is not None else "unknown"
        return FallbackWindow(
            unavailable=f"the fallback was not serving when the assessment was written "
            f"(the route served {serving})"
        )
    since, until = route.updated_at, workflow.now()
    if since >= until:
        return FallbackWindow(since=since, until=until, unavailable="the window is empty")
    model = ctx.incident.model
    request = FallbackWindowRequest(
        incident_id=ctx.incident.incident_id,
        model=model.id,
        target=model.router.target,
        router_url=model.router.url,
        since=since,
        until=until,
        policy=model.monitoring,
    )
    try:
        window: FallbackWindow = await workflow.execute_activity(
            ANALYSE_FALLBACK_WINDOW,
            request,
            result_type=FallbackWindow,
            activity_id=ctx.activity_id(step.name),
            **activity_options(step.retry),
        )
    except ActivityError as error:
        return FallbackWindow(
            since=since,
            until=until,
            unavailable=f"the decision source could not be read: {failure_text(error)}",
        )
    return window

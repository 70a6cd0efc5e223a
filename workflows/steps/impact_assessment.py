"""`impact_assessment` (A): the Algorithmic Impact Assessment that sign-offs bind to."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.analysis import IMPACT_ASSESSMENT, Assessment, AssessmentInput
    from playbooks.steps import ImpactAssessmentStep
    from workflows.options import step_options
    from workflows.steps.base import StepContext, StepOutcome


async def run(ctx: StepContext, step: ImpactAssessmentStep) -> StepOutcome:
    incident = ctx.incident
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

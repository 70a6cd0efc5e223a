"""`attribution_audit` (H): which features drive the gap; suspected proxies it confirms."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.analysis import ATTRIBUTION_AUDIT, AttributionFindings, AttributionInput
    from playbooks.steps import AttributionAuditStep
    from workflows.options import step_options
    from workflows.steps.base import StepContext, StepOutcome
    from workflows.steps.findings import confirm_proxies


async def run(ctx: StepContext, step: AttributionAuditStep) -> StepOutcome:
    incident, findings = ctx.incident, ctx.state.findings
    suspected = findings.provenance.suspected_proxies if findings.provenance else []
    found: AttributionFindings = await workflow.execute_activity(
        ATTRIBUTION_AUDIT,
        AttributionInput(
            incident_id=incident.incident_id,
            model=incident.model,
            step=step,
            suspected_proxies=suspected,
        ),
        result_type=AttributionFindings,
        activity_id=ctx.activity_id(step.name),
        **step_options(step),
    )
    findings.attribution = found
    confirm_proxies(findings)
    return StepOutcome(found.headline)

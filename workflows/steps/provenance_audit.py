"""`provenance_audit` (T): representation and label rates per slice, and the proxy scan."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.analysis import PROVENANCE_AUDIT, ProvenanceFindings, ProvenanceInput
    from playbooks.steps import ProvenanceAuditStep
    from workflows.options import step_options
    from workflows.steps.base import StepContext, StepOutcome
    from workflows.steps.findings import confirm_proxies


async def run(ctx: StepContext, step: ProvenanceAuditStep) -> StepOutcome:
    incident = ctx.incident
    found: ProvenanceFindings = await workflow.execute_activity(
        PROVENANCE_AUDIT,
        ProvenanceInput(incident_id=incident.incident_id, model=incident.model, step=step),
        result_type=ProvenanceFindings,
        activity_id=ctx.activity_id(step.name),
        **step_options(step),
    )
    findings = ctx.state.findings
    findings.provenance = found
    confirm_proxies(findings)
    return StepOutcome(found.headline)

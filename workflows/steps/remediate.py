"""`remediate` (I): produce a candidate model, in-house or by the team's training pipeline.

A new candidate clears the previous one's validation and assessment: they spoke of
another model.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.analysis import REMEDIATE, REMEDIATE_EXTERNAL, Candidate, RemediateInput
    from playbooks.steps import RemediateStep
    from workflows.options import step_options, without_heartbeat
    from workflows.steps.base import StepContext, StepOutcome


async def run(ctx: StepContext, step: RemediateStep) -> StepOutcome:
    incident, findings = ctx.incident, ctx.state.findings
    findings.remediation_rounds += 1
    provenance = findings.provenance
    request = RemediateInput(
        incident_id=incident.incident_id,
        model=incident.model,
        step=step,
        round=findings.remediation_rounds,
        confirmed_proxies=findings.confirmed_proxies,
        suspected_proxies=provenance.suspected_proxies if provenance else [],
    )
    external = any(strategy.name == "external" for strategy in step.strategies)
    options = step_options(step)
    if external:  # the training pipeline may answer hours later, without heartbeats
        options = without_heartbeat(options, step.external_timeout)
    candidate: Candidate = await workflow.execute_activity(
        REMEDIATE_EXTERNAL if external else REMEDIATE,
        request,
        result_type=Candidate,
        activity_id=ctx.activity_id(step.name),
        **options,
    )
    findings.candidate = candidate
    findings.validation = None
    findings.assessment = None
    return StepOutcome(candidate.headline)

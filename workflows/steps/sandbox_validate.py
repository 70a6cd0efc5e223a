"""`sandbox_validate` (C): the candidate against the playbook's gates, on every slice."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.analysis import SANDBOX_VALIDATE, ValidateInput, Validation
    from playbooks.steps import SandboxValidateStep
    from workflows.options import step_options
    from workflows.steps.base import StepContext, StepFailed, StepOutcome
    from workflows.steps.findings import proxies_to_check


class GateFailure(StepFailed):
    """The candidate did not pass the sandbox gates (or could not be judged)."""


async def run(ctx: StepContext, step: SandboxValidateStep) -> StepOutcome:
    incident, findings = ctx.incident, ctx.state.findings
    candidate = findings.candidate
    if candidate is None:
        raise GateFailure("no candidate to validate: a remediate step must come first")
    validation: Validation = await workflow.execute_activity(
        SANDBOX_VALIDATE,
        ValidateInput(
            incident_id=incident.incident_id,
            model=incident.model,
            candidate=candidate,
            gates=step.gates,
            proxies=proxies_to_check(findings),
        ),
        result_type=Validation,
        activity_id=ctx.activity_id(step.name),
        **step_options(step),
    )
    findings.validation = validation
    if validation.verdict != "pass":
        failed = ", ".join(validation.failed_gates) or "no gate failed outright"
        raise GateFailure(f"candidate {candidate.version} {validation.verdict}: {failed}")
    return StepOutcome(validation.headline)

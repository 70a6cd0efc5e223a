"""`notify`: send the playbook's message, its ``{placeholders}`` filled from the incident."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from playbooks.steps import NotifyStep
    from workflows.steps.base import StepContext, StepOutcome


async def run(ctx: StepContext, step: NotifyStep) -> StepOutcome:
    message = step.message.format(**message_fields(ctx))
    receipts = await ctx.notify(
        step.channel, f"{ctx.playbook.name}: {step.name}", message, step, to=step.to
    )
    return StepOutcome(f"notified {step.channel} via {', '.join(r.delivered_to for r in receipts)}")


def message_fields(ctx: StepContext) -> dict[str, str]:
    """The placeholders a playbook message may use."""
    incident = ctx.incident
    return {
        "incident_id": incident.incident_id,
        "model": incident.model.id,
        "severity": incident.severity.value,
        "summary": incident.summary,
        "playbook": ctx.playbook.name,
    }

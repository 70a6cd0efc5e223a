"""`signoff`: ask the named roles to approve, remind them, and escalate or expire at the deadline.

The votes arrive through the workflow's ``decide_signoff`` update; this step opens
the sign-off, waits on durable timers and reports the outcome.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.channels import ChannelRef, unique_refs
    from contracts.incident import Phase
    from playbooks.steps import SignoffStep
    from workflows import signoff as signoffs
    from workflows.steps.base import StepContext, StepFailed, StepOutcome


async def run(ctx: StepContext, step: SignoffStep) -> StepOutcome:
    assessment = ctx.state.findings.assessment
    digest = assessment.digest if assessment else None
    if step.bind_to_assessment and digest is None:
        raise StepFailed("this sign-off binds to an impact assessment, and none was written")
    status = signoffs.open_signoff(step, workflow.now(), digest)
    ctx.state.signoff = status
    ctx.commander_may_approve = step.commander_may_approve
    await ctx.set_phase(Phase.AWAITING_SIGNOFF)
    roles = ", ".join(f"{r.role} ({r.quorum})" for r in step.roles)
    await ctx.notify(
        "signoff",
        f"Sign-off requested: {step.subject}",
        f"Incident {ctx.incident.incident_id} needs sign-off from {roles} "
        f"by {status.deadline.isoformat()}.",
        step,
        to=unique_refs(*(r.notify for r in step.roles)),
        event="signoff_requested",
    )
    next_reminder = workflow.now() + step.reminder_every if step.reminder_every else None
    while status.outcome == "pending":
        wakes = [t for t in (next_reminder, None if status.escalated else status.deadline) if t]
        timeout = min(wakes) - workflow.now() if wakes else None
        try:
            await workflow.wait_condition(lambda: status.outcome != "pending", timeout=timeout)
        except TimeoutError:
            now = workflow.now()
            if next_reminder is not None and step.reminder_every and now >= next_reminder:
                next_reminder += step.reminder_every
                # No reminder at the very moment the deadline expires it.
                if status.escalated or now < status.deadline:
                    status.reminders_sent += 1
                    await ctx.notify(
                        "signoff",
                        f"Reminder: {step.subject}",
                        _pending_text(ctx),
                        step,
                        to=_pending_roles_channels(ctx, step),
                        event="signoff_reminder",
                    )
            if now >= status.deadline and not status.escalated:
                await _expire(ctx, step)
    await workflow.wait_condition(workflow.all_handlers_finished)
    await ctx.set_phase(Phase.RUNNING)
    if status.outcome != "approved":
        raise StepFailed(f"sign-off {status.outcome}: {_decision_text(ctx)}")
    return StepOutcome(f"approved: {_decision_text(ctx)}")


async def _expire(ctx: StepContext, step: SignoffStep) -> None:
    """The deadline passed: a rejection, or an escalation that keeps waiting."""
    status = ctx.state.signoff
    assert status is not None
    if step.on_expiry == "reject":
        status.outcome = "expired"
        return
    status.escalated = True
    await ctx.audit(
        "signoff.escalated", step=step.name, detail={"deadline": status.deadline.isoformat()}
    )
    await ctx.notify(
        ctx.playbook.escalation_channel,
        f"Sign-off overdue: {step.subject}",
        _pending_text(ctx),
        step,
        event="signoff_overdue",
    )


def _pending_roles_channels(ctx: StepContext, step: SignoffStep) -> list[ChannelRef]:
    """The channels of the roles a sign-off still waits for."""
    status = ctx.state.signoff
    assert status is not None
    pending = {r.role for r in status.roles if r.outcome == "pending"}
    return unique_refs(*(r.notify for r in step.roles if r.role in pending))


def _pending_text(ctx: StepContext) -> str:
    status = ctx.state.signoff
    assert status is not None
    pending = [
        f"{r.role} ({sum(v.decision == 'approve' for v in r.votes)}/{r.quorum})"
        for r in status.roles
        if r.outcome == "pending"
    ]
    return (
        f"Incident {ctx.incident.incident_id}: still waiting for {', '.join(pending)}; "
        f"deadline {status.deadline.isoformat()}."
    )


def _decision_text(ctx: StepContext) -> str:
    status = ctx.state.signoff
    assert status is not None
    return "; ".join(
        f"{r.role} {r.outcome}"
        + "".join(
            f" [{v.principal}: {v.decision}{' — ' + v.comment if v.comment else ''}]"
            for v in r.votes
        )
        for r in status.roles
    )

"""`monitor`: arm the model's drift monitor (its watch) with the step's or the manifest's policy."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.watch import ARM_MONITOR, ArmMonitorInput, MonitorArm
    from playbooks.durations import format_duration
    from playbooks.steps import MonitorStep
    from workflows.options import step_options
    from workflows.steps.base import StepContext, StepOutcome


async def run(ctx: StepContext, step: MonitorStep) -> StepOutcome:
    incident = ctx.incident
    policy = step.policy or incident.model.monitoring
    watch: str = await workflow.execute_activity(
        ARM_MONITOR,
        ArmMonitorInput(
            model=incident.model.id,
            arm=MonitorArm(
                actor=f"fairlane:{incident.incident_id}",
                reason=f"{ctx.playbook.name}/{step.name}",
                policy=policy,
            ),
        ),
        result_type=str,
        activity_id=ctx.activity_id(step.name),
        **step_options(step),
    )
    return StepOutcome(
        f"drift monitor armed on {watch}: every {format_duration(policy.interval)} over "
        f"{format_duration(policy.window)}, "
        f"acting after {policy.consecutive_breaches} breaching evaluations"
    )

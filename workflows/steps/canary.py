"""`canary`: the fairness-gated ramp, run by the incident's :class:`~workflows.canary.CanaryRamp`.

The ramp object outlives the step (the commander's canary updates reach it), so this
module only hands the step to it.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from playbooks.canary import CanaryStep
    from workflows.steps.base import StepContext, StepOutcome


async def run(ctx: StepContext, step: CanaryStep) -> StepOutcome:
    return StepOutcome(await ctx.canary.run(step))

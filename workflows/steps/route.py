"""`route`: set the model's route (fallback, primary, candidate, shadows, canary percent).

A containing route step keeps trying until the router confirms it (or a commander
stands it down); the route found first is kept as what a rollback restores.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.routing import Route, RouteSpec
    from playbooks.steps import RouteStep
    from workflows.options import step_options
    from workflows.routing import desired_route
    from workflows.steps.base import StepContext, StepOutcome


async def run(ctx: StepContext, step: RouteStep) -> StepOutcome:
    def wanted(current: Route) -> RouteSpec:
        if ctx.state.route_before is None:  # what a rollback restores, kept first
            ctx.state.route_before = current
        return desired_route(step, current)

    options = step_options(step)
    reason = f"{ctx.playbook.name}/{step.name}"
    if step.contains:
        change = await ctx.containment.ensure(
            step.name, options, wanted, reason, step.keep_trying_every
        )
    else:
        change = await ctx.ports.ensure(step.name, options, wanted, reason)
    route = change.after
    if not change.changed:
        return StepOutcome(f"route already {route.serving.value} at generation {route.generation}")
    return StepOutcome(
        f"serving {route.serving.value}, shadow {route.shadow_versions}, "
        f"generation {route.generation}"
    )

"""The incident workflow's step kinds, one module each, all behind one interface.

Each module has ``async def run(ctx: StepContext, step: TheStep) -> StepOutcome``
(:class:`~workflows.steps.base.StepKind`); :func:`~workflows.steps.dispatch.run_step`
picks the module for a step with an exhaustive ``match``, so a playbook step kind that
no module handles fails the type check instead of falling through to another kind.
"""

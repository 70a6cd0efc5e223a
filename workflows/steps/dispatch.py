"""Which module runs a step: an exhaustive ``match`` over the playbook's step kinds.

A step kind added to ``playbooks.steps.Step`` without a case here leaves ``step`` a
type other than ``Never`` at ``assert_never``, and mypy fails.
"""

from __future__ import annotations

from typing import TypeVar, assert_never

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from playbooks.canary import CanaryStep
    from playbooks.steps import (
        AttributionAuditStep,
        ImpactAssessmentStep,
        MonitorStep,
        NotifyStep,
        ParallelAuditsStep,
        ProvenanceAuditStep,
        RemediateStep,
        RouteStep,
        SandboxValidateStep,
        SignoffStep,
        Step,
    )
    from workflows.steps import (
        attribution_audit,
        canary,
        impact_assessment,
        monitor,
        notify,
        parallel,
        provenance_audit,
        remediate,
        route,
        sandbox_validate,
        signoff,
    )
    from workflows.steps.base import StepContext, StepKind, StepOutcome

S = TypeVar("S")


async def run_step(ctx: StepContext, step: Step) -> StepOutcome:
    """Run ``step`` with the module for its kind."""
    match step:
        case RouteStep():
            return await _run(route.run, ctx, step)
        case NotifyStep():
            return await _run(notify.run, ctx, step)
        case SignoffStep():
            return await _run(signoff.run, ctx, step)
        case ProvenanceAuditStep():
            return await _run(provenance_audit.run, ctx, step)
        case AttributionAuditStep():
            return await _run(attribution_audit.run, ctx, step)
        case ParallelAuditsStep():
            return await _run(parallel.run, ctx, step)
        case RemediateStep():
            return await _run(remediate.run, ctx, step)
        case SandboxValidateStep():
            return await _run(sandbox_validate.run, ctx, step)
        case ImpactAssessmentStep():
            return await _run(impact_assessment.run, ctx, step)
        case CanaryStep():
            return await _run(canary.run, ctx, step)
        case MonitorStep():
            return await _run(monitor.run, ctx, step)
        case _:
            assert_never(step)


async def _run(kind: StepKind[S], ctx: StepContext, step: S) -> StepOutcome:
    """Every module is called through the one interface, so mypy checks each against it."""
    return await kind(ctx, step)

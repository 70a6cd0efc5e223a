"""`parallel`: the provenance and attribution audits at once, then the proxies both confirm."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import assert_never

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from playbooks.steps import (
        AttributionAuditStep,
        AuditStep,
        ParallelAuditsStep,
        ProvenanceAuditStep,
    )
    from workflows.steps import attribution_audit, provenance_audit
    from workflows.steps.base import StepContext, StepOutcome


async def run(ctx: StepContext, step: ParallelAuditsStep) -> StepOutcome:
    outcomes = await asyncio.gather(*(_audit(ctx, sub) for sub in step.steps))
    confirmed = ", ".join(ctx.state.findings.confirmed_proxies) or "none"
    return StepOutcome(
        " | ".join([*(o.detail for o in outcomes), f"confirmed proxies: {confirmed}"])
    )


def _audit(ctx: StepContext, sub: AuditStep) -> Awaitable[StepOutcome]:
    match sub:
        case ProvenanceAuditStep():
            return provenance_audit.run(ctx, sub)
        case AttributionAuditStep():
            return attribution_audit.run(ctx, sub)
        case _:
            assert_never(sub)

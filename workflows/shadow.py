"""After a promotion, the replaced version keeps scoring in shadow for a while, then stops.

A child the incident starts and abandons: the incident resolves at promotion, and
this workflow's durable timer outlives it. When the period is over it removes the
version from the route's shadows, but only while the promoted version is still the
primary; if anything changed the route since (a new incident, a manual rollback),
the route is left as it is and the trail says why.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.canary import RETIRE_SHADOW_WORKFLOW, RetireShadowInput
    from contracts.targets import RouterRef
    from playbooks.base import RetrySpec
    from workflows.bookkeeping import Bookkeeping
    from workflows.options import activity_options
    from workflows.ports import RouterPort

RETRY = activity_options(RetrySpec(maximum_attempts=20, maximum_interval=timedelta(minutes=5)))
STEP = "retire-shadow"


@workflow.defn(name=RETIRE_SHADOW_WORKFLOW)
class RetireShadowWorkflow:
    @workflow.run
    async def run(self, retire: RetireShadowInput) -> str:
        books = Bookkeeping(retire.incident_id)
        await workflow.sleep(retire.after)
        router = RouterPort(
            RouterRef(target=retire.target, url=retire.router_url),
            retire.model,
            f"fairlane:{retire.incident_id}",
            books,
        )
        current = await router.read(STEP, RETRY)
        if retire.version not in current.shadow_versions:
            outcome = f"{retire.version} is no longer in shadow; nothing to retire"
        elif current.primary_version != retire.primary_version:
            outcome = (
                f"left {retire.version} in shadow: the primary is now "
                f"{current.primary_version}, not {retire.primary_version}"
            )
        else:
            spec = current.spec().model_copy(
                update={
                    "shadow_versions": [v for v in current.shadow_versions if v != retire.version]
                }
            )
            # Not RouterPort.ensure: the read decides whether to write at all, and the
            # route left is not a containment, so there is nothing to verify.
            await router.write(
                STEP, RETRY, current, spec, f"shadow period of {retire.version} over"
            )
            outcome = f"{retire.version} retired from shadow"
        await books.audit("canary.shadow_retired", step=STEP, detail={"outcome": outcome})
        return outcome

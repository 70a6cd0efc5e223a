"""The incident workflow on the time-skipping server, with the real router over HTTP.

Durable timers (a 72-hour sign-off deadline with 12-hour reminders) run in
milliseconds; the route flips at the real reference router; every step lands in the
real audit trail through the production worker and its interceptor.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from audit.trail import AuditTrail
from contracts.incident import Phase
from contracts.routing import Serving
from playbooks.loader import builtin_playbook, load_playbook_text
from tests.fixtures.histories import record_history
from tests.fixtures.incidents import (
    COMMANDER,
    decide,
    incident_input,
    start_incident,
    state_of,
    wait_for_phase,
)
from tests.fixtures.services import RouterService, running_worker


def _queue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def _signoff_playbook(on_expiry: str, on_failure: str = "{action: rollback}") -> str:
    return f"""
name: signoff-test
version: "1"
steps:
  - {{name: contain, kind: route, serving: fallback}}
  - name: approve
    kind: signoff
    subject: keep it contained
    roles: [{{role: legal, quorum: 2}}, {{role: compliance}}]
    deadline: 72h
    reminder_every: 12h
    on_expiry: {on_expiry}
    on_failure: {on_failure}
"""


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


async def test_drift_rollback_contains_at_the_router_and_resolves_on_signoff(
    time_env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    queue = _queue()
    incident = incident_input(router_service, builtin_playbook("drift-rollback"))
    async with running_worker(time_env.client, trail, router_service, queue):
        handle = await start_incident(time_env.client, incident, queue)
        state = await wait_for_phase(handle, Phase.AWAITING_SIGNOFF)
        assert state.contained

        async with router_service.client() as router:
            route = await router.get_route(router_service.model)
        assert route.serving is Serving.FALLBACK
        assert route.shadow_versions == [router_service.files.version]
        assert route.updated_by == f"fairlane:{incident.incident_id}"

        first = await decide(handle, "lee.legal", "legal")
        assert first.role_outcome == "approved" and first.signoff_outcome == "pending"
        last = await decide(handle, "chen.compliance", "compliance")
        assert last.signoff_outcome == "approved"
        final = await handle.result()
        await record_history(handle, "drift-rollback-resolved")

    assert final.phase is Phase.RESOLVED
    assert [s.status for s in final.steps] == ["succeeded"] * 4
    kinds = [r.kind for r in trail.records(incident.incident_id)]
    assert kinds[0] == "incident.opened"
    assert kinds.count("signoff.decided") == 2
    assert kinds.count("step.succeeded") == 4
    steps = {r.step for r in trail.records(incident.incident_id) if r.kind == "activity.completed"}
    assert {"contain", "notify-contained", "confirm-containment", "notify-confirmed"} <= steps
    assert trail.verify().ok


async def test_rejection_as_false_alarm_restores_the_primary_route(
    time_env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    queue = _queue()
    incident = incident_input(router_service, builtin_playbook("drift-rollback"))
    async with running_worker(time_env.client, trail, router_service, queue):
        handle = await start_incident(time_env.client, incident, queue)
        await wait_for_phase(handle, Phase.AWAITING_SIGNOFF)
        receipt = await decide(handle, "lee.legal", "legal", "reject")
        assert receipt.signoff_outcome == "rejected"
        final = await handle.result()
        await record_history(handle, "drift-rollback-rejected")

    assert final.phase is Phase.ROLLED_BACK
    assert not final.contained
    async with router_service.client() as router:
        route = await router.get_route(router_service.model)
    assert route.serving is Serving.PRIMARY and route.shadow_versions == []
    assert route.reason.startswith("rollback: sign-off rejected")


async def test_deadline_expiry_counts_as_rejection_after_reminders(
    time_env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    queue = _queue()
    incident = incident_input(router_service, load_playbook_text(_signoff_playbook("reject")))
    async with running_worker(time_env.client, trail, router_service, queue):
        handle = await start_incident(time_env.client, incident, queue)
        await wait_for_phase(handle, Phase.AWAITING_SIGNOFF)
        await decide(handle, "lee.legal", "legal")
        final = await handle.result()  # the test server skips the 72 hours
        await record_history(handle, "signoff-expired")

    assert final.signoff is not None
    assert final.signoff.outcome == "expired"
    assert final.signoff.reminders_sent == 5  # at 12, 24, 36, 48 and 60 hours
    assert final.phase is Phase.ROLLED_BACK
    reminders = [
        r
        for r in trail.records(incident.incident_id)
        if r.kind == "activity.completed" and r.step == "approve"
    ]
    assert len(reminders) == 6  # the request and five reminders


async def test_expiry_with_escalation_keeps_waiting_and_then_resolves(
    time_env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    queue = _queue()
    incident = incident_input(router_service, load_playbook_text(_signoff_playbook("escalate")))
    async with running_worker(time_env.client, trail, router_service, queue):
        handle = await start_incident(time_env.client, incident, queue)
        await wait_for_phase(handle, Phase.AWAITING_SIGNOFF)
        await time_env.sleep(timedelta(hours=80))
        state = await state_of(handle)
        assert state.signoff is not None and state.signoff.escalated
        assert state.phase is Phase.AWAITING_SIGNOFF
        await decide(handle, "l1", "legal")
        await decide(handle, "l2", "legal")
        await decide(handle, "c1", "compliance")
        final = await handle.result()
        await record_history(handle, "signoff-escalated-then-approved")

    assert final.phase is Phase.RESOLVED
    assert "signoff.escalated" in [r.kind for r in trail.records(incident.incident_id)]


async def test_validator_refuses_forged_self_and_repeated_decisions(
    time_env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    queue = _queue()
    incident = incident_input(router_service, builtin_playbook("drift-rollback"))
    async with running_worker(time_env.client, trail, router_service, queue):
        handle = await start_incident(time_env.client, incident, queue)
        await wait_for_phase(handle, Phase.AWAITING_SIGNOFF)
        refusals = {
            "does not hold the role 'legal'": ("mallory", "legal", ["communications"]),
            "cannot sign off their own incident": (
                COMMANDER,
                "legal",
                ["legal", "incident_commander"],
            ),
            "is not required": ("exec", "executive", ["executive"]),
        }
        for reason, (who, role, roles) in refusals.items():
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await decide(handle, who, role, roles=roles)
            assert reason in str(refused.value.cause)
        await decide(handle, "lee.legal", "legal")
        with pytest.raises(WorkflowUpdateFailedError) as repeated:
            await decide(handle, "lee.legal", "legal")
        assert "already decided" in str(repeated.value.cause)
        state = await state_of(handle)
        assert state.signoff is not None
        assert [v.principal for r in state.signoff.roles for v in r.votes] == ["lee.legal"]
        decided = [r for r in trail.records(incident.incident_id) if r.kind == "signoff.decided"]
        assert [r.actor for r in decided] == ["lee.legal"]
        await handle.terminate("test over")


async def test_goto_loops_back_a_bounded_number_of_times(
    time_env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    queue = _queue()
    playbook = load_playbook_text(
        """
name: loop-test
version: "1"
steps:
  - {name: contain, kind: route, serving: fallback}
  - {name: brief, kind: notify, message: "please review {incident_id}"}
  - name: approve
    kind: signoff
    subject: approve the plan
    roles: [{role: legal}]
    on_failure: {action: goto, step: brief, max_times: 1}
"""
    )
    incident = incident_input(router_service, playbook)
    async with running_worker(time_env.client, trail, router_service, queue):
        handle = await start_incident(time_env.client, incident, queue)
        await wait_for_phase(handle, Phase.AWAITING_SIGNOFF)
        await decide(handle, "l1", "legal", "reject")
        # Back to `brief`, then a fresh sign-off opens.
        state = await wait_for_phase(handle, Phase.AWAITING_SIGNOFF)
        while state.signoff is None or state.signoff.outcome != "pending":
            state = await wait_for_phase(handle, Phase.AWAITING_SIGNOFF)
        await decide(handle, "l2", "legal", "reject")
        final = await handle.result()

    assert final.phase is Phase.FAILED
    assert final.outcome is not None and "goto exhausted after 1" in final.outcome
    assert [s.name for s in final.steps] == ["contain", "brief", "approve", "brief", "approve"]

"""Containment is a promise: a router that stays down past the step's retry budget.

Real dev server, real worker, the real router behind a link the test cuts and
restores on the same port. Before this, the `contain` step gave up after its budget
and the incident finished `escalated` with the model still on its primary.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from audit.trail import AuditTrail
from contracts.alerts import AlertDelivery, AlertEvent, AlertSource, AlertStatus
from contracts.containment import UPDATE_STAND_DOWN, StandDown, StandDownReceipt
from contracts.decisions import STAND_DOWN
from contracts.incident import IncidentState, Phase
from contracts.routing import Serving
from contracts.watch import QUERY_WATCH, SIGNAL_ALERTS, WatchState, watch_workflow_id
from incidents.watch import WatchQueues, signal_watch
from playbooks.loader import PlaybookError, load_playbook_text
from registry.service import ModelRegistry
from tests.fixtures.gateway import deploy_credit
from tests.fixtures.incidents import incident_input, manifest_for, signed, start_incident, state_of
from tests.fixtures.link import Link
from tests.fixtures.services import RouterService, running_worker, time_skipping_server

pytestmark = pytest.mark.integration

KEEP_TRYING_EVERY_S = 2
PLAYBOOK = f"""
name: contain-test
version: "1"
steps:
  - name: contain
    kind: route
    serving: fallback
    retry: {{maximum_attempts: 3, initial_interval: 200ms, maximum_interval: 500ms}}
    timeouts: {{start_to_close: 2s, schedule_to_close: 1m}}
    keep_trying_every: {KEEP_TRYING_EVERY_S}s
    on_failure: {{action: escalate}}
  - {{name: told, kind: notify, message: "{{model}} contained"}}
"""


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


@pytest_asyncio.fixture
async def link(router_service: RouterService) -> AsyncIterator[Link]:
    link = Link(router_service.url)
    await link.up()
    yield link
    await link.down()


def _behind(router: RouterService, link: Link) -> RouterService:
    """The router as reached through ``link``: the worker built with it declares the link
    as its `gateway` target, so the test can cut the incident's only way to the router."""
    return RouterService(url=link.url, token=router.token, files=router.files)


async def _until(
    handle: WorkflowHandle[object, IncidentState], what: str, check: object, timeout_s: float = 60
) -> IncidentState:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = await state_of(handle)
        if check(state):  # type: ignore[operator]
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"never {what}: {await state_of(handle)}")


def _failing(state: IncidentState) -> bool:
    return state.containment is not None and state.containment.failing_since is not None


async def _serving(router: RouterService) -> Serving:
    async with router.client() as client:
        return (await client.get_route(router.model)).serving


async def test_a_router_down_past_the_budget_is_contained_when_it_returns(
    dev_env: WorkflowEnvironment, router_service: RouterService, link: Link, trail: AuditTrail
) -> None:
    queue = f"contain-{uuid.uuid4().hex[:8]}"
    incident = incident_input(_behind(router_service, link), load_playbook_text(PLAYBOOK))
    await link.down()
    async with running_worker(dev_env.client, trail, _behind(router_service, link), queue):
        handle = await start_incident(dev_env.client, incident, queue)
        state = await _until(handle, "failing", _failing)
        # The budget is spent, and the incident says so instead of ending.
        assert state.phase is Phase.RUNNING and not state.contained
        assert state.containment is not None
        assert "RouterUnreachable: router unreachable: ConnectError" in (
            state.containment.last_error or ""
        )
        kinds = [r.kind for r in trail.records(incident.incident_id)]
        assert "containment.failing" in kinds
        await _until_recorded(trail, incident.incident_id, "activity.completed", "escalation")
        await asyncio.sleep(3 * KEEP_TRYING_EVERY_S)  # well past the budget, still trying
        assert (await state_of(handle)).phase is Phase.RUNNING
        assert await _serving(router_service) is Serving.PRIMARY

        await link.up()
        back = time.monotonic()
        final = await handle.result()
        recovery_s = time.monotonic() - back  # the incident confirmed it at the router
        assert await _serving(router_service) is Serving.FALLBACK

    assert final.phase is Phase.RESOLVED and final.contained
    assert final.containment is not None and final.containment.confirmed_at is not None
    # The fallback serves within one backoff interval of the router's return (plus the
    # time the workflow and the router take to act on it).
    assert recovery_s < KEEP_TRYING_EVERY_S + 2, recovery_s
    records = trail.records(incident.incident_id)
    kinds = [r.kind for r in records]
    assert kinds.index("containment.failing") < kinds.index("containment.confirmed")
    async with router_service.client() as client:
        route = await client.get_route(router_service.model)
    assert route.updated_by == f"fairlane:{incident.incident_id}"
    assert route.shadow_versions == [router_service.files.version]
    assert trail.verify().ok


async def test_only_a_commander_stands_containment_down_and_the_trail_says_who_and_why(
    dev_env: WorkflowEnvironment, router_service: RouterService, link: Link, trail: AuditTrail
) -> None:
    queue = f"contain-{uuid.uuid4().hex[:8]}"
    incident = incident_input(_behind(router_service, link), load_playbook_text(PLAYBOOK))
    await link.down()
    async with running_worker(dev_env.client, trail, _behind(router_service, link), queue):
        handle = await start_incident(dev_env.client, incident, queue)
        await _until(handle, "failing", _failing)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                UPDATE_STAND_DOWN,
                await signed(
                    handle,
                    STAND_DOWN,
                    StandDown(principal="lee.legal", principal_roles=["legal"], reason="bored"),
                ),
                result_type=StandDownReceipt,
            )
        assert "only an incident_commander" in str(refused.value.cause)
        receipt = await handle.execute_update(
            UPDATE_STAND_DOWN,
            await signed(
                handle,
                STAND_DOWN,
                StandDown(
                    principal="dana.ic",
                    principal_roles=["incident_commander"],
                    reason="model retired by hand at the edge",
                ),
            ),
            result_type=StandDownReceipt,
        )
        assert receipt.accepted and receipt.step == "contain"
        final = await handle.result()
        with pytest.raises(RPCError, match="completed"):  # nothing left to stand down
            await handle.execute_update(
                UPDATE_STAND_DOWN,
                StandDown(principal="dana.ic", principal_roles=["incident_commander"], reason="x"),
                result_type=StandDownReceipt,
            )

    assert final.phase is Phase.ESCALATED and not final.contained
    assert final.outcome is not None
    assert "containment stood down by dana.ic: model retired by hand" in final.outcome
    stood = [r for r in trail.records(incident.incident_id) if r.kind == "containment.stood_down"]
    assert len(stood) == 1 and stood[0].actor == "dana.ic"
    assert "model retired by hand at the edge" in stood[0].detail
    assert trail.verify().ok


async def test_a_refusing_router_is_tried_again_until_it_knows_the_model(
    dev_env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    """A 4xx will not change by itself, but an operator can fix it (deploy the model,
    rotate the token): containment keeps asking, on durable timers."""
    queue = f"contain-{uuid.uuid4().hex[:8]}"
    incident = incident_input(router_service, load_playbook_text(PLAYBOOK))
    late = f"late-{uuid.uuid4().hex[:6]}"
    incident = incident.model_copy(update={"model": incident.model.model_copy(update={"id": late})})
    async with running_worker(dev_env.client, trail, router_service, queue):
        handle = await start_incident(dev_env.client, incident, queue)
        state = await _until(handle, "failing", _failing)
        assert "RouterRefused404" in (state.containment.last_error or "")  # type: ignore[union-attr]
        await _until(handle, "refused again", lambda s: s.containment.refusals >= 2)
        files = router_service.files
        async with router_service.client() as client:
            await deploy_credit(client, late, {files.version: files.artifact_name}, files.version)
        final = await asyncio.wait_for(handle.result(), 30)
    assert final.phase is Phase.RESOLVED and final.contained


def test_a_containment_step_that_would_run_again_after_a_stand_down_is_refused() -> None:
    with pytest.raises(PlaybookError) as refused:
        load_playbook_text(PLAYBOOK.replace("{action: escalate}", "{action: retry, max_times: 2}"))
    assert "steps[0].on_failure.action 'retry'" in str(refused.value)
    assert "stands it down" in str(refused.value)


def test_steps_that_can_end_an_incident_before_containment_are_warned_about() -> None:
    playbook = load_playbook_text(
        """
name: late-contain
version: "1"
steps:
  - {name: tell, kind: notify, message: "{model}", on_failure: {action: fail}}
  - {name: contain, kind: route, serving: fallback}
"""
    )
    assert playbook.warnings() == [
        "steps[0] (tell) run(s) before the containment step steps[1]: a failure there can "
        "end the incident before the model is contained"
    ]
    assert load_playbook_text(PLAYBOOK).warnings() == []


async def _until_recorded(trail: AuditTrail, incident_id: str, kind: str, step: str) -> None:
    for _ in range(200):
        if any(r.kind == kind and r.step == step for r in trail.records(incident_id)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {kind} at {step} on the trail")


async def test_the_alert_path_tells_people_and_its_incident_keeps_trying(
    router_service: RouterService, link: Link, trail: AuditTrail, tmp_path: Path
) -> None:
    """An alert while the router is down: the watch gives up quickly, tells the
    escalation channel, and opens the incident uncontained; the incident's own
    containment never gives up and contains the model once the router is back."""
    (tmp_path / "contain-test.yaml").write_text(PLAYBOOK)
    manifest = manifest_for(_behind(router_service, link))
    manifest = manifest.model_copy(
        update={"monitoring": manifest.monitoring.model_copy(update={"playbook": "contain-test"})}
    )
    ModelRegistry(trail.engine).register(manifest, "test")
    queue = f"contain-{uuid.uuid4().hex[:8]}"
    watch_id = watch_workflow_id(manifest.id)
    await link.down()
    async with (
        time_skipping_server() as env,
        running_worker(
            env.client, trail, _behind(router_service, link), queue, playbooks_dir=tmp_path
        ),
    ):
        now = await env.get_current_time()
        delivery = AlertDelivery(
            delivery_id=f"dlv-{uuid.uuid4().hex}",
            sender="alertmanager-prod",
            received_at=now,
            alerts=[
                AlertEvent(
                    model=manifest.id,
                    source=AlertSource.ALERTMANAGER,
                    fingerprint="fp-1",
                    status=AlertStatus.FIRING,
                    name="LimitDisparity",
                    starts_at=now,
                    summary="one group's limits 30% lower",
                )
            ],
        )
        await signal_watch(env.client, WatchQueues(queue, queue), manifest, SIGNAL_ALERTS, delivery)
        watch = env.client.get_workflow_handle(watch_id)
        incident_id = None
        for _ in range(600):  # the watch tries for WATCH_CONTAIN_BUDGET of real time
            memory = (await watch.query(QUERY_WATCH, result_type=WatchState)).memory
            if memory.open_incident is not None:
                incident_id = memory.open_incident
                break
            await asyncio.sleep(0.1)
        assert incident_id is not None, "the watch never opened an incident"
        told = [
            r
            for r in trail.records(watch_id)
            if r.kind == "activity.completed" and "send_notification" in r.detail
        ]
        assert [r.step for r in told] == ["contain"]
        assert "watch.containment_failed" in [r.kind for r in trail.records(watch_id)]

        handle = env.client.get_workflow_handle(incident_id, result_type=IncidentState)
        state = await _until(handle, "failing", _failing)
        assert state.trigger is not None and state.trigger.route_after is None
        await link.up()
        state = await _until(handle, "contained", lambda s: s.contained)
        assert state.containment is not None and state.containment.confirmed_at is not None
        assert await _serving(router_service) is Serving.FALLBACK
        kinds = [r.kind for r in trail.records(incident_id)]
        assert kinds.index("containment.failing") < kinds.index("containment.confirmed")
        final = await asyncio.wait_for(handle.result(), 30)  # contained, then `told`
        assert final.phase is Phase.RESOLVED
        await watch.terminate("test over")
    assert trail.verify().ok

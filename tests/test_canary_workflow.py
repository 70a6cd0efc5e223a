"""The fairness-gated canary on the time-skipping server: weeks of bakes in seconds.

The route really changes at the real reference router (the candidate is deployed
there, ramped, promoted or rolled back); the live decisions the analyses judge come
from simulated traffic (metrics.simulated), because a router's log cannot hold
decisions stamped in the time-skipped future. Every analysis lands in the real
audit trail through the production worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from audit.trail import AuditTrail
from contracts.canary import (
    QUERY_CANARY_PROGRESS,
    RETIRE_SHADOW_WORKFLOW,
    SIGNAL_CANARY_CONTROL,
    UPDATE_CANARY_CONTROL,
    CanaryControl,
    ControlAction,
    ControlReceipt,
    RampStepProgress,
    RetireShadowInput,
)
from contracts.decisions import CANARY_CONTROL
from contracts.incident import IncidentState, Phase
from contracts.model import ModelVersion
from contracts.routing import RouteUpdate, Serving
from demo.credit_model import DemoModelFiles, save_model, train_credit_model
from demo.dataset import generate_applicants
from demo.scenario import applicant_from
from metrics.simulated import (
    AmountModel,
    ArmModel,
    GroupModel,
    Regression,
    SimulatedTraffic,
    TrafficModel,
)
from playbooks.loader import load_playbook_text
from store.artifacts import ArtifactStore
from tests.fixtures.gateway import deploy_credit
from tests.fixtures.incidents import COMMANDER, incident_input, signed, start_incident, state_of
from tests.fixtures.services import RouterService, running_worker, time_skipping_server

CANDIDATE = "v2-candidate"
STRATA = {"20-30k|short": 1.0, "50-60k|long": 1.0, "80-90k|medium": 1.0}


@pytest_asyncio.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A server per test: these incidents skip weeks ahead, and a promotion abandons a
    30-day timer whose leftovers could stop a shared server from skipping time."""
    async with time_skipping_server() as environment:
        yield environment


@pytest.fixture(scope="session")
def candidate_artifact(demo_files: DemoModelFiles) -> tuple[str, str]:
    """The candidate, in the artifacts directory the router and the worker open: name, sha256.

    Made once and then reused: other modules import this fixture, which makes it a
    fixture of theirs too, and a second save writes other bytes (a skops file is a zip
    with timestamps) under the name the router has already pinned, which it rightly
    refuses as a changed artifact."""
    store = ArtifactStore(demo_files.artifacts_dir)
    name = f"{demo_files.model_id}/{CANDIDATE}.skops"
    if store.path(name).is_file():
        return name, store.digest(name)
    return save_model(
        store,
        train_credit_model(generate_applicants(3_000, 7), CANDIDATE),
        demo_files.model_id,
        f"{CANDIDATE}.skops",
    )


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


def _arm(per_hour: float, approval: float = 0.6) -> ArmModel:
    return ArmModel(
        decisions_per_hour=per_hour,
        approval_probability=approval,
        amounts={s: AmountModel(mean=5_000 + 2_000 * i, sd=800) for i, s in enumerate(STRATA)},
    )


def traffic(
    now: datetime, per_hour: float = 40, regressions: list[Regression] | None = None
) -> SimulatedTraffic:
    """Two groups treated alike by both sides, unless a regression says otherwise.

    ``now`` is the test server's clock, which earlier tests have skipped ahead.
    """
    group = GroupModel(strata=STRATA, candidate=_arm(per_hour), stable=_arm(4 * per_hour))
    return SimulatedTraffic(
        TrafficModel(
            groups={"A": group, "B": group},
            epoch=now - timedelta(hours=1),
            seed=11,
            regressions=regressions or [],
        )
    )


async def simulated(
    env: WorkflowEnvironment, per_hour: float = 40, regressions: list[Regression] | None = None
) -> dict[str, SimulatedTraffic]:
    """Simulated traffic standing in for the decision log, starting at the server's now."""
    now = await env.get_current_time()
    return {"decision_log": traffic(now, per_hour, regressions)}


def canary_playbook(**canary: Any) -> str:
    settings = {
        "bake": "7d",
        "analysis_interval": "6h",
        "metrics": "{min_samples_per_group: 100}",
        **canary,
    }
    fields = "\n".join(f"    {key}: {value}" for key, value in settings.items())
    return f"""
name: canary-test
version: "1"
steps:
  - {{name: contain, kind: route, serving: fallback}}
  - name: canary
    kind: canary
    candidate_version: {CANDIDATE}
{fields}
    on_failure: {{action: fail}}
"""


class Incident:
    """One incident on its own task queue, with the worker reading ``provider``."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        router: RouterService,
        trail: AuditTrail,
        artifact: tuple[str, str],
        playbook: str,
    ) -> None:
        self.input = incident_input(router, load_playbook_text(playbook, "canary-test.yaml"))
        self.input.model.versions.append(
            ModelVersion(version=CANDIDATE, artifact=artifact[0], sha256=artifact[1])
        )
        self.client: Client = env.client
        self.router = router
        self.trail = trail
        self.queue = f"canary-{uuid.uuid4().hex[:8]}"
        self.handle: WorkflowHandle[object, IncidentState] | None = None

    @asynccontextmanager
    async def worker(
        self, providers: dict[str, SimulatedTraffic], **settings: Any
    ) -> AsyncIterator[None]:
        """The production worker on this incident's queue, reading ``providers`` (and any
        other worker ``settings``, declared notification channels say).

        Leaving it terminates the shadow-retirement timer a promotion abandons, while the
        worker still runs: a workflow left with a task on a queue no worker polls stops
        the time-skipping server from skipping time, and the next test would hang.
        """
        async with running_worker(
            self.client, self.trail, self.router, self.queue, providers, **settings
        ):
            try:
                yield
            finally:
                retire = self.retirement()
                with contextlib.suppress(RPCError):  # never started: nothing was promoted
                    if (await retire.describe()).status == WorkflowExecutionStatus.RUNNING:
                        await retire.terminate("test over")

    def retirement(self) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(
            f"{self.input.incident_id}/retire-shadow/{self.router.files.version}"
        )

    async def run(self, providers: dict[str, SimulatedTraffic], **settings: Any) -> IncidentState:
        """Start the incident with a worker reading ``providers`` and wait for its end."""
        async with self.worker(providers, **settings):
            handle = await self.start()
            return await handle.result()

    async def start(self) -> WorkflowHandle[object, IncidentState]:
        self.handle = await start_incident(self.client, self.input, self.queue)
        return self.handle

    async def ramp_step_running(self, ramp_index: int = 0) -> IncidentState:
        assert self.handle is not None
        for _ in range(400):
            state = await state_of(self.handle)
            canary = state.canary
            if canary and canary.step_workflow_id and canary.ramp_index == ramp_index:
                return state
            await asyncio.sleep(0.025)
        raise AssertionError(f"ramp step {ramp_index} never started: {state}")

    async def control(
        self, action: str, who: str = COMMANDER, roles: list[str] | None = None
    ) -> ControlReceipt:
        assert self.handle is not None
        control = CanaryControl(
            principal=who,
            principal_roles=roles or ["incident_commander"],
            action=action,
            reason=f"{action} for the test",
        )
        receipt: ControlReceipt = await self.handle.execute_update(
            UPDATE_CANARY_CONTROL,
            await signed(self.handle, CANARY_CONTROL, control),
            result_type=ControlReceipt,
        )
        return receipt

    async def progress(self) -> RampStepProgress:
        assert self.handle is not None
        state = await state_of(self.handle)
        assert state.canary is not None and state.canary.step_workflow_id is not None
        progress: RampStepProgress = await self.client.get_workflow_handle(
            state.canary.step_workflow_id
        ).query(QUERY_CANARY_PROGRESS, result_type=RampStepProgress)
        return progress

    def kinds(self) -> list[str]:
        return [r.kind for r in self.trail.records(self.input.incident_id)]

    def events(self, kind: str) -> list[dict[str, Any]]:
        records = self.trail.records(self.input.incident_id)
        return [json.loads(r.detail) for r in records if r.kind == kind]


async def refusal(control: Awaitable[ControlReceipt]) -> str:
    """The incident's reason for refusing a control (the update's validator failure)."""
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await control
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ControlRefused"
    return cause.message


async def _candidate_share(router: RouterService, requests: int) -> float:
    """Real applications through the real router: the share the candidate answered."""
    applicants = generate_applicants(requests, 23)
    async with router.client() as client:
        answers = [
            await client.decide(router.model, applicant_from(row, f"share-{uuid.uuid4().hex}"))
            for row in applicants.itertuples(index=False)
        ]
    assert {a.version for a in answers if a.served_by is Serving.CANDIDATE} == {CANDIDATE}
    assert {a.served_by for a in answers} == {Serving.CANDIDATE, Serving.FALLBACK}
    return sum(a.served_by is Serving.CANDIDATE for a in answers) / requests


async def _route(router: RouterService) -> Any:
    async with router.client() as client:
        return await client.get_route(router.model)


async def test_a_full_ramp_of_seven_day_bakes_promotes_the_candidate(
    env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    candidate_artifact: tuple[str, str],
) -> None:
    incident = Incident(env, router_service, trail, candidate_artifact, canary_playbook())
    final = await incident.run(await simulated(env))

    assert final.phase is Phase.RESOLVED, final.outcome
    canary = final.canary
    assert canary is not None and canary.state == "promoted"
    assert [s.percent for s in canary.completed] == [1, 5, 25, 50, 100]
    assert {s.result for s in canary.completed} == {"passed"}
    for step in canary.completed:
        assert step.finished_at - step.started_at >= timedelta(days=7)
        assert step.looks == 28  # every 6 hours for 7 days

    route = await _route(router_service)
    assert route.serving is Serving.PRIMARY
    assert route.primary_version == CANDIDATE
    assert route.candidate_version is None and route.canary_percent == 0
    assert router_service.files.version in route.shadow_versions

    analyses = incident.events("canary.analysis")
    assert len(analyses) == 5 * 28
    last = analyses[-1]
    assert last["analysis"]["verdict"] == "pass"
    for result in last["analysis"]["results"]:
        assert set(result) >= {"metric", "comparison", "counts", "estimate", "interval", "verdict"}
    assert last["since"] < last["until"]
    assert "canary.promoted" in incident.kinds()
    # The 30-day shadow timer was running when the test's worker ended it.
    assert (await incident.retirement().describe()).status == WorkflowExecutionStatus.TERMINATED


@pytest.mark.parametrize("promoted_still_primary", [True, False])
async def test_the_replaced_version_leaves_shadow_after_its_period(
    env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    candidate_artifact: tuple[str, str],
    promoted_still_primary: bool,
) -> None:
    """30 days after a promotion the old version stops scoring, unless the route moved on."""
    v1 = router_service.files.version
    async with router_service.client() as router:
        await deploy_credit(
            router,
            router_service.model,
            {v1: router_service.files.artifact_name, CANDIDATE: candidate_artifact[0]},
            v1,
        )
        current = await router.get_route(router_service.model)
        primary = CANDIDATE if promoted_still_primary else v1
        shadow = v1 if promoted_still_primary else CANDIDATE
        await router.set_route(
            router_service.model,
            RouteUpdate(
                primary_version=primary,
                shadow_versions=[shadow],
                generation=current.generation + 1,
                updated_by="test",
            ),
        )
    queue = f"retire-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, trail, router_service, queue):
        outcome = await env.client.execute_workflow(
            RETIRE_SHADOW_WORKFLOW,
            RetireShadowInput(
                incident_id="inc-test-retire",
                model=router_service.model,
                target="gateway",
                version=v1,
                primary_version=CANDIDATE,
                after=timedelta(days=30),
            ),
            id=f"inc-test-retire/retire-shadow/{uuid.uuid4().hex[:6]}",
            task_queue=queue,
            result_type=str,
        )
    route = await _route(router_service)
    if promoted_still_primary:
        assert outcome == f"{v1} retired from shadow"
        assert route.shadow_versions == []
    else:
        assert outcome == f"{v1} is no longer in shadow; nothing to retire"
        assert route.shadow_versions == [CANDIDATE]
    retired = [
        json.loads(r.detail)
        for r in trail.records("inc-test-retire")
        if r.kind == "canary.shadow_retired"
    ]
    assert retired == [{"outcome": outcome}]
    assert router_service.files.version not in (await _route(router_service)).shadow_versions


async def test_a_breach_at_the_second_step_rolls_back_to_the_fallback(
    env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    candidate_artifact: tuple[str, str],
) -> None:
    incident = Incident(env, router_service, trail, candidate_artifact, canary_playbook())
    regression_at = await env.get_current_time() + timedelta(days=8)  # into the second step
    biased = await simulated(
        env, regressions=[Regression(starts_at=regression_at, group="B", amount_factor=0.8)]
    )
    final = await incident.run(biased)

    assert final.phase is Phase.FAILED
    canary = final.canary
    assert canary is not None and canary.state == "rolled_back"
    assert [s.result for s in canary.completed] == ["passed", "breached"]
    assert canary.completed[1].finished_at - regression_at < timedelta(days=2)
    assert canary.breach is not None
    breached = [r for r in canary.breach.analysis.results if r.verdict == "breach"]
    assert any(r.metric == "conditional_disparity" for r in breached)
    assert final.outcome is not None and "breached at 5%" in final.outcome

    route = await _route(router_service)
    assert route.serving is Serving.FALLBACK
    assert route.candidate_version is None and route.canary_percent == 0
    assert router_service.files.version in route.shadow_versions

    rolled_back = incident.events("canary.rolled_back")
    assert len(rolled_back) == 1 and rolled_back[0]["analysis"]["analysis"]["verdict"] == "breach"
    notified = [
        r
        for r in trail.records(incident.input.incident_id)
        if r.kind == "activity.completed"
        and json.loads(r.detail)["activity_type"] == "send_notification"
    ]
    assert notified, "the rollback was not announced"


async def test_too_few_samples_stays_inconclusive_and_never_promotes(
    env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    candidate_artifact: tuple[str, str],
) -> None:
    playbook = canary_playbook(bake="1d", extend_by="1d", inconclusive_limit=2)
    incident = Incident(env, router_service, trail, candidate_artifact, playbook)
    final = await incident.run(await simulated(env, per_hour=1))

    assert final.phase is Phase.FAILED
    canary = final.canary
    assert canary is not None and canary.state == "inconclusive"
    assert [s.result for s in canary.completed] == ["inconclusive"]
    assert "more samples needed: A" in canary.completed[0].detail
    extended = incident.events("canary.bake_extended")
    assert [e["extension"] for e in extended] == [1, 2]
    assert all(e["samples_needed"]["A"] > 0 for e in extended)
    verdicts = {e["analysis"]["verdict"] for e in incident.events("canary.analysis")}
    assert verdicts == {"inconclusive"}

    route = await _route(router_service)
    assert route.primary_version == router_service.files.version
    assert route.serving is Serving.FALLBACK and route.canary_percent == 0


async def test_pause_stops_the_bake_clock_across_days_and_resume_finishes_the_ramp(
    env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    candidate_artifact: tuple[str, str],
) -> None:
    playbook = canary_playbook(ramp="[50, 100]", bake="2d")
    incident = Incident(env, router_service, trail, candidate_artifact, playbook)
    async with incident.worker(await simulated(env)):
        handle = await incident.start()
        await incident.ramp_step_running(0)
        receipt = await incident.control("pause")
        assert receipt.accepted and receipt.ramp_step == 1 and receipt.percent == 50
        assert "already paused" in await refusal(incident.control("pause"))
        before = await incident.progress()
        assert before.clock_running_since is None and before.paused_by == COMMANDER

        share = await _candidate_share(router_service, requests=400)
        assert abs(share - 0.50) < 0.08, f"{share:.2f} of real requests went to the candidate"

        await env.sleep(timedelta(days=5))
        during = await incident.progress()
        assert during.time_left == before.time_left  # the clock did not move in 5 days
        assert during.looks >= before.looks + 19  # analyses went on all the while

        await incident.control("resume")
        final = await handle.result()

    assert final.phase is Phase.RESOLVED
    first = final.canary.completed[0] if final.canary else None
    assert first is not None and first.result == "passed"
    assert first.finished_at - first.started_at >= timedelta(days=7)  # 5 paused + 2 baked
    paused = incident.events("canary.pause")
    assert paused == [{"reason": "pause for the test", "ramp_step": 1, "percent": 50.0}]
    actors = {
        r.actor for r in trail.records(incident.input.incident_id) if r.kind == "canary.resume"
    }
    assert actors == {COMMANDER}


async def test_promote_skips_a_bake_and_promote_full_skips_the_rest(
    env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    candidate_artifact: tuple[str, str],
) -> None:
    incident = Incident(env, router_service, trail, candidate_artifact, canary_playbook())
    async with incident.worker(await simulated(env)):
        handle = await incident.start()
        await incident.ramp_step_running(0)
        await incident.control("promote")
        await incident.ramp_step_running(1)
        await incident.control("promote_full")
        final = await handle.result()

    assert final.phase is Phase.RESOLVED
    assert final.canary is not None and final.canary.state == "promoted"
    assert [s.result for s in final.canary.completed] == ["promoted", "promoted_full"]
    assert (await _route(router_service)).primary_version == CANDIDATE
    assert "canary.promote" in incident.kinds() and "canary.promote_full" in incident.kinds()


async def test_abort_rolls_back_and_only_a_commander_may_control(
    env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    candidate_artifact: tuple[str, str],
) -> None:
    incident = Incident(env, router_service, trail, candidate_artifact, canary_playbook())
    async with incident.worker(await simulated(env)):
        handle = await incident.start()
        await incident.ramp_step_running(0)
        for action in ("pause", "promote", "abort"):
            refused = await refusal(incident.control(action, who="lee.legal", roles=["legal"]))
            assert refused == f"lee.legal is not an incident commander and cannot {action} a canary"
        assert await refusal(incident.control("resume")) == "the canary is not paused"
        # Around the incident and its trail, straight to the running ramp step: dropped.
        state = await state_of(handle)
        assert state.canary is not None and state.canary.step_workflow_id is not None
        await env.client.get_workflow_handle(state.canary.step_workflow_id).signal(
            SIGNAL_CANARY_CONTROL,
            CanaryControl(
                principal="mallory",
                principal_roles=["incident_commander"],
                action=ControlAction.PROMOTE_FULL,
                reason="forged",
            ),
        )
        await env.sleep(timedelta(minutes=1))
        state = await state_of(handle)
        assert state.canary is not None
        assert state.canary.state == "ramping" and state.canary.ramp_index == 0
        await incident.control("abort")
        final = await handle.result()

    assert final.phase is Phase.FAILED
    assert final.canary is not None and final.canary.state == "aborted"
    route = await _route(router_service)
    assert route.serving is Serving.FALLBACK and route.candidate_version is None
    aborts = [r for r in trail.records(incident.input.incident_id) if r.kind == "canary.abort"]
    assert [(r.actor, json.loads(r.detail)["reason"]) for r in aborts] == [
        (COMMANDER, "abort for the test")
    ]
    assert "lee.legal" not in {r.actor for r in trail.records(incident.input.incident_id)}


async def test_history_stays_bounded_over_a_ninety_day_ramp(
    env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    candidate_artifact: tuple[str, str],
) -> None:
    limit = 300
    playbook = canary_playbook(bake="18d", analysis_interval="3h", history_limit=limit)
    incident = Incident(env, router_service, trail, candidate_artifact, playbook)
    final = await incident.run(await simulated(env))

    assert final.phase is Phase.RESOLVED
    assert final.canary is not None
    looks = sum(step.looks for step in final.canary.completed)
    assert looks == 5 * 18 * 8
    assert final.canary.completed[-1].finished_at - final.opened_at >= timedelta(days=90)

    assert incident.handle is not None
    incident_events = len((await incident.handle.fetch_history()).events)
    assert incident_events < 250, "the incident's history grows with the bake"
    runs = []
    for step in range(1, 6):
        child = f"{incident.input.incident_id}/canary/canary/r0/{step}"
        runs += await _run_lengths(env.client, child)
    assert len(runs) > 5, "no ramp step continued as new"
    assert max(runs) <= limit + 40


async def _run_lengths(client: Client, workflow_id: str) -> list[int]:
    """History length of every run of a workflow, following continue-as-new backwards."""
    lengths: list[int] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        lengths.append(len(history.events))
        started = history.events[0]
        assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        previous = started.workflow_execution_started_event_attributes.continued_execution_run_id
        if not previous:
            return lengths
        run_id = previous

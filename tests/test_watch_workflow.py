"""The model watch on the time-skipping server: the drift monitor and alerts, end to end.

Real parts: the production worker (watch, incident, every activity, the audit
interceptor), the real router over HTTP (the route really flips), the real trail and
registry. Only the live traffic is simulated, so monitors can evaluate for days in
seconds; its stable side is what the monitor reads.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from audit.trail import AuditTrail
from config import Settings
from contracts.alerts import AlertDelivery, AlertEvent, AlertKind, AlertSource, AlertStatus
from contracts.incident import QUERY_STATE, IncidentState, Phase
from contracts.metrics import Side
from contracts.model import ModelManifest
from contracts.monitoring import MonitoringPolicy
from contracts.routing import Route, Serving
from contracts.targets import RouterRef
from contracts.watch import (
    QUERY_WATCH,
    SIGNAL_ALERTS,
    SIGNAL_ARM_MONITOR,
    SIGNAL_DISARM_MONITOR,
    MonitorArm,
    MonitorDisarm,
    WatchState,
    watch_workflow_id,
)
from fairness.live import LiveThresholds, MetricVerdict
from incidents.watch import WatchQueues, signal_watch, watch_manifest
from metrics.simulated import (
    AmountModel,
    ArmModel,
    GroupModel,
    Regression,
    SimulatedTraffic,
    TrafficModel,
)
from playbooks.loader import load_playbook_text
from registry.service import ModelRegistry
from stack.worker import CONTAINMENT_ACTIVITIES, build_worker
from tests.fixtures.histories import record_history
from tests.fixtures.incidents import decide, incident_input, manifest_for, start_incident
from tests.fixtures.services import RouterService, running_worker, time_skipping_server

T = TypeVar("T")
STRATA = {"20-30k|short": 1.0, "50-60k|long": 1.0, "80-90k|medium": 1.0}
GAP = 0.7  # group B's limits at 70% of group A's, at equal income and credit


@pytest_asyncio.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A server per test: watches wait on timers forever, and one left behind on a queue
    nobody polls would stop a shared server from skipping time."""
    async with time_skipping_server() as environment:
        yield environment


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


def policy(**changes: Any) -> MonitoringPolicy:
    settings: dict[str, Any] = {
        "window": timedelta(hours=4),
        "interval": timedelta(hours=1),
        "thresholds": LiveThresholds(
            max_approval_rate_shift=None,
            max_error_rate_increase=None,
            min_samples_per_group=100,
        ),
        "min_drift_samples": 100,
        **changes,
    }
    return MonitoringPolicy(**settings)


def traffic(now: datetime, per_hour: float = 150, gaps: Sequence[tuple[int, int]] = ()) -> Any:
    """Two groups treated alike, except B's limits cut to GAP during each (from, to) hour
    span after ``now`` (the test server's clock, which earlier tests skipped ahead)."""
    arm = ArmModel(
        decisions_per_hour=per_hour,
        approval_probability=0.6,
        amounts={s: AmountModel(mean=5_000 + 2_000 * i, sd=800) for i, s in enumerate(STRATA)},
    )
    group = GroupModel(strata=STRATA, candidate=arm, stable=arm)
    return {
        "decision_log": SimulatedTraffic(
            TrafficModel(
                groups={"A": group, "B": group},
                epoch=now - timedelta(hours=1),
                seed=5,
                regressions=[
                    Regression(
                        starts_at=now + timedelta(hours=start),
                        ends_at=now + timedelta(hours=end),
                        group="B",
                        side=Side.STABLE,
                        amount_factor=GAP,
                    )
                    for start, end in gaps
                ],
            )
        )
    }


class Watch:
    """One model's watch, driven the way the API drives it (signal-with-start)."""

    def __init__(self, env: WorkflowEnvironment, router: RouterService, trail: AuditTrail) -> None:
        self.env = env
        self.client: Client = env.client
        self.router = router
        self.trail = trail
        self.queue = f"watch-{uuid.uuid4().hex[:8]}"
        self.queues = WatchQueues(watch=self.queue, bookkeeping=self.queue)
        self.manifest: ModelManifest = manifest_for(router)
        ModelRegistry(trail.engine).register(self.manifest, "test")
        self.handle = self.client.get_workflow_handle(watch_workflow_id(self.manifest.id))

    async def arm(self, monitoring: MonitoringPolicy) -> None:
        arm = MonitorArm(actor="dana.ic", reason="test", policy=monitoring)
        await signal_watch(self.client, self.queues, self.manifest, SIGNAL_ARM_MONITOR, arm)

    async def alert(self, *alerts: AlertEvent) -> None:
        delivery = AlertDelivery(
            delivery_id=f"dlv-{uuid.uuid4().hex}",
            sender="alertmanager-prod",
            received_at=await self.env.get_current_time(),
            alerts=list(alerts),
        )
        await signal_watch(self.client, self.queues, self.manifest, SIGNAL_ALERTS, delivery)

    async def state(self) -> WatchState:
        state: WatchState = await self.handle.query(QUERY_WATCH, result_type=WatchState)
        return state

    async def until(self, check: Callable[[WatchState], bool]) -> WatchState:
        return await _eventually(self.state, check)

    async def incident_until(
        self, incident_id: str, check: Callable[[IncidentState], bool]
    ) -> IncidentState:
        return await _eventually(lambda: self.incident_state(incident_id), check)

    def incident(self, incident_id: str) -> WorkflowHandle[Any, IncidentState]:
        return self.client.get_workflow_handle(incident_id, result_type=IncidentState)

    async def incident_state(self, incident_id: str) -> IncidentState:
        state: IncidentState = await self.incident(incident_id).query(
            QUERY_STATE, result_type=IncidentState
        )
        return state

    async def route(self) -> Route:
        async with self.router.client() as router:
            return await router.get_route(self.router.model)

    def kinds(self, subject: str) -> list[str]:
        return [r.kind for r in self.trail.records(subject)]


async def _eventually(read: Callable[[], Awaitable[T]], check: Callable[[T], bool]) -> T:
    """Poll ``read`` until ``check`` holds (30 s of real time: the server skips its own)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        value = await read()
        if check(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"never got there: {value!r}")
        await asyncio.sleep(0.05)


async def _received(trail: AuditTrail, subject: str) -> list[Any]:
    return [r for r in trail.records(subject) if r.kind == "alert.received"]


def alert(fingerprint: str, status: AlertStatus, starts_at: datetime) -> AlertEvent:
    return AlertEvent(
        model="credit-limit",
        source=AlertSource.ALERTMANAGER,
        fingerprint=fingerprint,
        status=status,
        name="CreditLimitDisparity",
        starts_at=starts_at,
        summary="group B limits 30% lower at equal income",
        labels={"alertname": "CreditLimitDisparity", "severity": "page"},
    )


async def test_two_breaching_evaluations_contain_the_model_and_open_one_incident(
    env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    watch = Watch(env, router_service, trail)
    now = await env.get_current_time()
    async with running_worker(
        env.client, trail, router_service, watch.queue, traffic(now, gaps=[(0, 1000)])
    ):
        await watch.arm(policy(consecutive_breaches=2))
        await env.sleep(timedelta(hours=2, minutes=30))
        state = await watch.until(lambda s: s.memory.open_incident is not None)
        incident_id = state.memory.open_incident
        assert incident_id is not None

        first, second = state.memory.evaluations
        assert [first.verdict, second.verdict] == [MetricVerdict.BREACH, MetricVerdict.BREACH]
        assert (first.consecutive_breaches, first.action) == (1, "none")
        assert (second.consecutive_breaches, second.action) == (2, "contained")
        assert "conditional" in second.headline

        route = await watch.route()
        assert route.serving is Serving.FALLBACK
        assert route.shadow_versions == [router_service.files.version]
        assert route.updated_by == f"fairlane:{watch_workflow_id(watch.manifest.id)}"

        incident = await watch.incident_until(incident_id, lambda s: s.contained)
        assert incident.trigger is not None and incident.trigger.source is AlertSource.MONITOR
        assert incident.trigger.evaluation is not None
        assert incident.contained and incident.route_before is not None
        assert incident.route_before.serving is Serving.PRIMARY
        assert incident.playbook == "drift-rollback"

        # Holding: no evaluation while the incident is open, and no second incident.
        await env.sleep(timedelta(hours=5))
        state = await watch.state()
        assert state.status == "holding" and len(state.memory.evaluations) == 2
        assert [i.incident_id for i in state.memory.incidents] == [incident_id]
        await watch.incident(incident_id).terminate("test over")
        await watch.handle.terminate("test over")
        await record_history(watch.handle, "watch-monitor-breach")

    watch_trail = watch.kinds(watch_workflow_id(watch.manifest.id))
    assert watch_trail.count("monitor.evaluated") == 2
    assert "watch.contained" in watch_trail and "watch.incident_opened" in watch_trail
    opened = trail.records(incident_id)[0]
    assert opened.kind == "incident.opened"
    trigger = json.loads(opened.detail)["trigger"]
    assert (trigger["source"], trigger["route_after"]) == ("monitor", "fallback")
    assert trail.verify().ok


async def test_inconclusive_windows_do_nothing(
    env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    watch = Watch(env, router_service, trail)
    now = await env.get_current_time()
    thin = traffic(now, per_hour=4, gaps=[(0, 1000)])  # a real gap, far too few decisions
    async with running_worker(env.client, trail, router_service, watch.queue, thin):
        await watch.arm(policy(consecutive_breaches=1))
        await env.sleep(timedelta(hours=6, minutes=30))
        state = await watch.until(lambda s: len(s.memory.evaluations) == 6)
        await watch.handle.terminate("test over")

    assert {e.verdict for e in state.memory.evaluations} == {MetricVerdict.INCONCLUSIVE}
    assert all(e.action == "none" for e in state.memory.evaluations)
    assert state.memory.open_incident is None and state.memory.incidents == []
    assert (await watch.route()).serving is Serving.PRIMARY


async def test_a_flapping_breach_never_reaches_the_streak(
    env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    """Breach, pass, breach, pass...: two in a row are needed, so nothing is contained."""
    watch = Watch(env, router_service, trail)
    now = await env.get_current_time()
    # Evaluation k (an hour after arming, then hourly) sees the hour bucket stamped now + k.
    flapping = traffic(now, per_hour=300, gaps=[(1, 2), (3, 4), (5, 6), (7, 8)])
    monitoring = policy(window=timedelta(hours=1), consecutive_breaches=2, max_psi=None)
    async with running_worker(env.client, trail, router_service, watch.queue, flapping):
        await watch.arm(monitoring)
        await env.sleep(timedelta(hours=8, minutes=30))
        state = await watch.until(lambda s: len(s.memory.evaluations) == 8)
        await watch.handle.terminate("test over")

    verdicts = [e.verdict for e in state.memory.evaluations]
    assert verdicts == [MetricVerdict.BREACH, MetricVerdict.PASS] * 4
    assert max(e.consecutive_breaches for e in state.memory.evaluations) == 1
    assert state.memory.incidents == []
    assert (await watch.route()).serving is Serving.PRIMARY


async def test_alert_storm_opens_one_incident_and_a_refire_after_it_closed_opens_the_next(
    env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    watch = Watch(env, router_service, trail)
    t0 = await env.get_current_time()
    async with running_worker(env.client, trail, router_service, watch.queue, traffic(t0)):
        await watch.alert(alert("fp-1", AlertStatus.FIRING, t0))
        state = await watch.until(lambda s: s.memory.open_incident is not None)
        first = state.memory.open_incident
        assert first is not None
        assert (await watch.route()).serving is Serving.FALLBACK

        # Alertmanager re-sends, resolves, fires again, and a second alert joins: all of it
        # lands on the open incident, none of it opens another.
        t1 = t0 + timedelta(minutes=30)
        deliveries = [
            [alert("fp-1", AlertStatus.FIRING, t0)],
            [alert("fp-1", AlertStatus.RESOLVED, t0)],
            [alert("fp-1", AlertStatus.FIRING, t1), alert("fp-2", AlertStatus.FIRING, t1)],
            [alert("fp-1", AlertStatus.FIRING, t0)],  # a late snapshot of the first episode
        ]
        for delivery in deliveries:  # in order: a resolution overtaken by a re-fire is stale
            await watch.alert(*delivery)
        state = await watch.until(lambda s: s.memory.counts.received == 6)
        counts = state.memory.counts
        assert (counts.new, counts.repeat, counts.resolved, counts.refired, counts.stale) == (
            2,
            1,
            1,
            1,
            1,
        )
        assert [i.incident_id for i in state.memory.incidents] == [first]

        # The watch counts before it signals the incident: wait for the incident's view.
        incident = await watch.incident_until(first, lambda s: s.alerts.counts.received == 6)
        assert incident.trigger is not None and incident.trigger.source is AlertSource.ALERTMANAGER
        assert sorted(incident.alerts.firing) == ["fp-1", "fp-2"]
        # ... and the trail: the watch records alerts without waiting for the records.
        recorded = await _eventually(
            lambda: _received(trail, first), lambda records: len(records) >= 6
        )
        assert len(recorded) == 6
        assert {json.loads(r.detail)["kind"] for r in recorded} == {k.value for k in AlertKind}

        # A false alarm: the rejection restores the route the watch found, and the watch
        # learns that the incident closed.
        await watch.incident_until(first, lambda s: s.phase is Phase.AWAITING_SIGNOFF)
        await decide(watch.incident(first), "lee.legal", "legal", "reject")
        final = await watch.incident(first).result()
        await record_history(watch.incident(first), "incident-opened-by-alerts")
        assert final.phase is Phase.ROLLED_BACK
        assert (await watch.route()).serving is Serving.PRIMARY
        state = await watch.until(lambda s: s.memory.open_incident is None)
        assert state.memory.incidents[0].closed_phase == Phase.ROLLED_BACK.value

        # The same alert firing again, now that nothing is open, opens a new incident.
        await watch.alert(alert("fp-1", AlertStatus.FIRING, t0 + timedelta(hours=2)))
        state = await watch.until(lambda s: s.memory.open_incident not in (None, first))
        second = state.memory.open_incident
        assert second is not None
        assert (await watch.route()).serving is Serving.FALLBACK
        await watch.incident(second).terminate("test over")
        await watch.handle.terminate("test over")
        await record_history(watch.handle, "watch-alerts-and-refire")

    assert len(state.memory.incidents) == 2
    assert "watch.incident_closed" in watch.kinds(watch_workflow_id(watch.manifest.id))


async def test_disarm_stops_the_evaluations_and_the_history_stays_bounded(
    env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    watch = Watch(env, router_service, trail)
    now = await env.get_current_time()
    async with running_worker(env.client, trail, router_service, watch.queue, traffic(now)):
        await watch.arm(policy(history_limit=200))
        await env.sleep(timedelta(hours=60, minutes=30))
        state = await watch.until(lambda s: s.memory.counts.received == 0 and s.memory.runs >= 2)
        assert state.memory.reference is not None  # a fair window became the drift reference
        assert all(e.verdict is MetricVerdict.PASS for e in state.memory.evaluations)
        assert len(state.memory.evaluations) == 20  # the latest, across runs
        description = await watch.handle.describe()
        assert description.history_length is not None and description.history_length <= 260

        disarm = MonitorDisarm(actor="dana.ic", reason="model retired")
        await watch.handle.signal(SIGNAL_DISARM_MONITOR, disarm)
        state = await watch.until(lambda s: s.status == "idle")
        before = len(watch.kinds(watch_workflow_id(watch.manifest.id)))
        await env.sleep(timedelta(hours=10))
        assert len(watch.kinds(watch_workflow_id(watch.manifest.id))) == before
        await watch.handle.terminate("test over")

    evaluated = watch.kinds(watch_workflow_id(watch.manifest.id)).count("monitor.evaluated")
    assert evaluated == 60
    assert state.memory.monitor is None


async def test_the_playbook_monitor_step_arms_the_watch_with_the_manifest_policy(
    env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    watch = Watch(env, router_service, trail)
    playbook = load_playbook_text(
        "name: rearm\nversion: '1'\nsteps:\n  - {name: monitor, kind: monitor}\n", "rearm.yaml"
    )
    incident = incident_input(router_service, playbook)
    incident.model = watch.manifest
    now = await env.get_current_time()
    async with running_worker(env.client, trail, router_service, watch.queue, traffic(now)):
        final = await start_incident(env.client, incident, watch.queue)
        state_after = await final.result()
        state = await watch.until(lambda s: s.status == "monitoring")
        await watch.handle.terminate("test over")

    assert state_after.phase is Phase.RESOLVED
    assert "drift monitor armed on watch-credit-limit" in state_after.steps[0].detail
    assert state.memory.monitor == watch.manifest.monitoring
    assert state.memory.armed_by == f"fairlane:{incident.incident_id}"


async def test_a_watch_contains_on_the_containment_queue_with_no_worker_on_the_main_one(
    env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    """Where the API starts a watch (the containment queue), only the containment worker
    is needed to contain the model: the watch and its route activities never wait for the
    main queue, which here nobody polls; the incident it opens starts there."""
    watch = Watch(env, router_service, trail)
    settings = Settings(
        router_url=router_service.url, router_token=router_service.token, task_queue=watch.queue
    )
    containment_queue = settings.resolved_containment_task_queue
    assert containment_queue != watch.queue
    t0 = await env.get_current_time()
    workers = build_worker(env.client, settings, trail, traffic(t0))
    # Its activities (opening incidents, evaluating) are bounded: a storm's incidents
    # start a few at a time, behind containment (CONTAINMENT_ACTIVITIES says why).
    assert workers.containment.config()["max_concurrent_activities"] == CONTAINMENT_ACTIVITIES
    assert (workers.main.config()["max_concurrent_activities"] or 100) > CONTAINMENT_ACTIVITIES
    async with workers.containment:
        delivery = AlertDelivery(
            delivery_id=f"dlv-{uuid.uuid4().hex}",
            sender="alertmanager-prod",
            received_at=t0,
            alerts=[alert("fp-1", AlertStatus.FIRING, t0)],
        )
        both = WatchQueues(watch=containment_queue, bookkeeping=watch.queue)
        await signal_watch(env.client, both, watch.manifest, SIGNAL_ALERTS, delivery)
        state = await watch.until(lambda s: s.memory.open_incident is not None)
        incident_id = state.memory.open_incident
        assert incident_id is not None
        assert (await watch.route()).serving is Serving.FALLBACK

        history = await watch.handle.fetch_history()
        queues: dict[str, set[str]] = {}
        for event in history.events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                scheduled = event.activity_task_scheduled_event_attributes
                queues.setdefault(scheduled.activity_type.name, set()).add(
                    scheduled.task_queue.name
                )
        # Containment ran as a local activity inside the watch's workflow task (a
        # marker, no activity waiting in any queue), and was confirmed at the target
        # before the incident was even asked to open. The alerts' trail records wait
        # for the main queue's worker: bookkeeping never holds the containment worker.
        assert queues == {
            "open_incident": {containment_queue},
            "record_audit_events": {watch.queue},
        }
        contained_at = next(
            i
            for i, event in enumerate(history.events)
            if event.HasField("marker_recorded_event_attributes")
            and b"contain_route" in event.marker_recorded_event_attributes.SerializeToString()
        )
        opened_at = next(
            i
            for i, event in enumerate(history.events)
            if event.HasField("activity_task_scheduled_event_attributes")
        )
        assert contained_at < opened_at
        assert (await watch.handle.describe()).task_queue == containment_queue
        incident = env.client.get_workflow_handle(incident_id)
        assert (await incident.describe()).task_queue == watch.queue
        assert "alert.received" not in watch.kinds(incident_id)  # nobody polls main yet
        await incident.terminate("test over")
        async with workers.main:  # the books are kept once the main worker runs
            for _ in range(300):
                if "alert.received" in watch.kinds(incident_id):
                    break
                await asyncio.sleep(0.1)
            assert "alert.received" in watch.kinds(incident_id)
        await record_history(watch.handle, "watch-bookkeeps-elsewhere")
        await watch.handle.terminate("test over")

    assert "watch.contained" in watch.kinds(watch_workflow_id(watch.manifest.id))


async def test_a_registered_manifest_reaches_the_running_watch(
    env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    """Registration starts the watch; a later registration moving the model to another
    routing target reaches the running watch, which contains there, not at the old one."""
    watch = Watch(env, router_service, trail)
    t0 = await env.get_current_time()
    async with running_worker(env.client, trail, router_service, watch.queue, traffic(t0)):
        await watch_manifest(env.client, watch.queues, watch.manifest)
        assert (await watch.state()).status == "idle"  # running before any alert
        moved = watch.manifest.model_copy(update={"router": RouterRef(target="elsewhere")})
        await watch_manifest(env.client, watch.queues, moved)
        await watch.alert(alert("fp-1", AlertStatus.FIRING, t0))

        async def containing_failed() -> list[Any]:
            records = trail.records(watch.handle.id)
            return [r for r in records if r.kind == "activity.failed" and r.step == "contain"]

        failed = await _eventually(containing_failed, bool)
        assert "'elsewhere' is not declared" in failed[0].detail, failed[0].detail
        assert (await watch.route()).serving is Serving.PRIMARY  # the old target, untouched
        await watch.until(lambda s: s.memory.counts.received == 1)
        # The target's refusal is the watch's failure to contain, not the watch's end.
        assert (await watch.handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await watch.handle.terminate("test over")
        await record_history(watch.handle, "watch-follows-its-manifest")

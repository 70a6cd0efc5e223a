"""The Fairlane worker process: two Temporal workers, every workflow and activity, audited.

* the **containment** worker polls its own queue (``resolved_containment_task_queue``):
  the model watches, which take every external alert and the drift monitor's verdicts,
  and the activities a watch schedules (read and set the route, open the incident,
  evaluate a window; its audit events are local activities). Its slots and pollers are
  its own, so in a storm containing a model never waits in a queue behind the incidents'
  workflow tasks and activities;
* the **main** worker polls ``task_queue``: incidents, canary steps, every activity. It
  keeps the watch registered too, so watches started before the containment queue
  existed (and every run they continue as) keep running where their history says.

By default (``fairlane worker``) both run in one process, on one client, with the audit
interceptor; ``fairlane worker --queue containment|main`` runs one of them, as the
embedded stack does (see :mod:`stack.supervisor`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import PollerBehaviorAutoscaling, Worker

from activities.analysis import AnalysisActivities
from activities.audit_events import AuditActivities
from activities.audit_interceptor import AuditInterceptor
from activities.canary import CanaryActivities
from activities.containment import ContainmentActivities
from activities.external_training import ExternalTrainingActivities
from activities.fallback_window import FallbackWindowActivities
from activities.incidents import IncidentActivities
from activities.monitor import MonitorActivities
from activities.notify import NotifyActivities
from activities.routing import RoutingActivities
from audit.trail import AuditTrail
from config import Settings
from config.secret_files import SecretFileError
from config.targets import TargetResolver
from incidents.decisions import decision_key
from incidents.training_callbacks import TrainingCallbacks
from metrics.databases import DecisionDatabases
from metrics.decision_log import DecisionLogProvider
from metrics.ingested import IngestedDecisionsProvider
from metrics.prometheus import PrometheusProvider
from metrics.provider import MetricsProvider
from metrics.sources import DeclaredSourceProvider
from registry.service import ModelRegistry
from stack.queues import Queues
from workflows.canary_step import CanaryStepWorkflow
from workflows.incident import IncidentWorkflow
from workflows.shadow import RetireShadowWorkflow
from workflows.watch import ModelWatchWorkflow

CONTAINMENT_POLLERS_AT_REST = 8
"""Workflow-task polls the containment worker keeps open on each of its queues (the
shared one and its sticky one) however quiet it is: a storm's first alerts find them
waiting. Each open poll holds one of the worker's workflow task slots."""

CONTAINMENT_ACTIVITIES = 8
"""Activities (not local ones) the containment worker runs at once: opening incidents,
telling the escalation channel, evaluating a monitor's window. Containing is not one of
them (a local activity inside the watch's workflow task), but it shares this process's
event loop and the machine with them. Unbounded, a storm's hundred incidents started in
its first seconds (77 ``open_incident`` at once), each setting off its incident's workflow
tasks, first steps and trail records, all while the models were being contained.
Bounded, the incidents start eight at a time and what they set off spreads out behind
containment: in the storm (``bench/alert_storm.py``, two cores) models were on their
fallback at p99 3.1-5.0 s after their first alert over fourteen runs, against 4.1-7.6 s,
and sixteen gave less margin (3.4 and 4.8 s). The price is paid by bookkeeping: incidents
open p50 13-21 s after their model's first alert (the last by 22-38 s), against 5-6 s,
an ``open_incident`` waiting for a slot here; the incident's first step finds its model
contained either way. A lone incident never waits."""


def worker_identity() -> str:
    return f"fairlane-worker@{socket.gethostname()}"


@dataclass
class FairlaneWorkers:
    """The process's workers, run (or entered with ``async with``) together."""

    main: Worker
    containment: Worker
    close_clients: Callable[[], Awaitable[None]] | None = None
    """Closes the HTTP clients the activities share, once the workers have stopped."""

    @property
    def all(self) -> list[Worker]:
        return [self.main, self.containment]

    def polling(self, queues: Queues) -> list[Worker]:
        if queues is Queues.MAIN:
            return [self.main]
        if queues is Queues.CONTAINMENT:
            return [self.containment]
        return self.all

    async def run(self, queues: Queues = Queues.ALL) -> None:
        """Run the workers of ``queues`` until one stops (a fatal error, or shutdown): then
        stop the others."""
        workers = self.polling(queues)
        try:
            async with asyncio.TaskGroup() as group:
                for worker in workers:
                    group.create_task(self._run(worker, workers))
        finally:
            await self._close_clients()

    async def _close_clients(self) -> None:
        if self.close_clients is not None:
            await self.close_clients()

    @staticmethod
    async def _run(worker: Worker, workers: list[Worker]) -> None:
        try:
            await worker.run()
        finally:
            for other in workers:
                if other is not worker and other.is_running and not other.is_shutdown:
                    await other.shutdown()

    async def __aenter__(self) -> FairlaneWorkers:
        async with AsyncExitStack() as stack:
            for worker in self.all:
                await stack.enter_async_context(worker)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._stack.__aexit__(exc_type, exc, traceback)
        finally:
            await self._close_clients()


def metrics_providers(
    settings: Settings, targets: TargetResolver, registry: ModelRegistry, engine: Engine
) -> dict[str, MetricsProvider]:
    """Every provider a playbook or monitoring policy may name (activities/providers.py).

    ``decision_log`` (the default name) reads each model from the source its manifest
    declares; reported decisions are in Fairlane's own database (``engine``).
    """
    gateway = DecisionLogProvider(targets)
    ingest = IngestedDecisionsProvider(engine)
    declared = DeclaredSourceProvider(
        registry.get,
        gateway=gateway,
        ingest=ingest,
        databases=DecisionDatabases(settings.decision_databases),
        prometheus_servers=settings.declared_prometheus_servers,
    )
    providers: dict[str, MetricsProvider] = {
        "decision_log": declared,
        declared.name: declared,
        "gateway": gateway,
        ingest.name: ingest,
    }
    if settings.prometheus_url:
        providers["prometheus"] = PrometheusProvider(settings.prometheus_url)
    return providers


def build_worker(
    client: Client,
    settings: Settings,
    trail: AuditTrail,
    providers: Mapping[str, MetricsProvider] | None = None,
) -> FairlaneWorkers:
    """The workers; ``providers`` replaces the metrics providers the canary and the monitor read."""
    if settings.router_token is None:
        raise SystemExit("FAIRLANE_ROUTER_TOKEN is not set: the worker cannot reach the router")
    # The worker holds the operators' declared targets and their credentials; requests
    # only name a target, so a credential never goes to a URL a manifest chose.
    targets = settings.target_resolver()
    routing = RoutingActivities(targets)
    containment_activities = ContainmentActivities(routing)
    artifacts = settings.artifact_store()
    registry = ModelRegistry(trail.engine, artifacts)
    if providers is None:
        providers = metrics_providers(settings, targets, registry, trail.engine)
    canary = CanaryActivities(providers, registry.get)
    monitor = MonitorActivities(providers, registry.get)
    fallback = FallbackWindowActivities(providers, registry.get)
    incidents = IncidentActivities(
        client,
        settings.task_queue,
        registry,
        settings.playbooks_dir,
        watch_task_queue=settings.resolved_containment_task_queue,
        decision_key=lambda: decision_key(settings),  # the API's public key, never its private key
    )
    try:
        channels = settings.channel_resolver()  # reads the channels' secret files, once
    except SecretFileError as error:
        raise SystemExit(f"the worker cannot start: {error}") from None
    notify = NotifyActivities(
        settings.notify_webhook_url,
        settings.notify_timeout_s,
        channels=channels,
        console_url=settings.resolved_console_url,
    )
    audit = AuditActivities(trail)
    analysis = AnalysisActivities(settings.data_dir.resolve(), registry, artifacts)
    external = ExternalTrainingActivities(settings.api_url, TrainingCallbacks(trail.engine))
    identity = worker_identity()
    interceptors = [AuditInterceptor(trail, identity)]
    containment = Worker(
        client,
        task_queue=settings.resolved_containment_task_queue,
        workflows=[ModelWatchWorkflow],
        activities=[
            routing.read_route,
            routing.set_route,
            routing.verify_route,
            containment_activities.contain_route,
            incidents.open_incident,
            monitor.evaluate_monitor_window,
            notify.send_notification,  # the watch tells people when it cannot contain
            audit.record_audit_event,
            audit.record_audit_events,
        ],
        interceptors=interceptors,
        identity=identity,
        # As many pollers as the server says the queue needs: with the default five
        # (one on the shared queue), a storm's workflow tasks queued on the server while
        # this worker idled, and a new watch's first task, the one that contains, waited
        # p50 16 s, p99 37 s (bench/alert_storm.py); with autoscaling, p50 0.1-2.5 s.
        # Never fewer than eight: a quiet queue scales down to one poller, and a storm
        # then opened on one, doubling each round (1, 2, 4, 8, 16 sticky pollers in its
        # first two seconds, the worker's own metrics) while the first alerts' tasks,
        # the ones that contain, waited on the server.
        workflow_task_poller_behavior=PollerBehaviorAutoscaling(
            minimum=CONTAINMENT_POLLERS_AT_REST, initial=CONTAINMENT_POLLERS_AT_REST
        ),
        max_concurrent_activities=CONTAINMENT_ACTIVITIES,
    )
    main = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[IncidentWorkflow, CanaryStepWorkflow, RetireShadowWorkflow, ModelWatchWorkflow],
        activities=[
            routing.read_route,
            routing.set_route,
            routing.verify_route,
            containment_activities.contain_route,  # watches of runs before the own queue
            routing.deploy_version,
            canary.canary_analysis,
            monitor.evaluate_monitor_window,
            fallback.analyse_fallback_window,
            incidents.open_incident,
            incidents.arm_monitor,
            notify.send_notification,
            audit.record_audit_event,
            audit.record_audit_events,
            analysis.provenance_audit,
            analysis.attribution_audit,
            analysis.remediate,
            analysis.sandbox_validate,
            analysis.impact_assessment,
            external.remediate_external,
        ],
        interceptors=interceptors,
        identity=identity,
    )
    return FairlaneWorkers(main=main, containment=containment, close_clients=routing.aclose)

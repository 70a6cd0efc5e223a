"""The Fairlane worker: the incident workflow, every activity, and the audit interceptor."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from temporalio.client import Client
from temporalio.worker import Worker

from activities.analysis import AnalysisActivities
from activities.audit_events import AuditActivities
from activities.audit_interceptor import AuditInterceptor
from activities.canary import CanaryActivities
from activities.external_training import ExternalTrainingActivities
from activities.incidents import IncidentActivities
from activities.monitor import MonitorActivities
from activities.notify import NotifyActivities
from activities.routing import RoutingActivities
from audit.trail import AuditTrail
from config import Settings
from metrics.decision_log import DecisionLogProvider
from metrics.prometheus import PrometheusProvider
from metrics.provider import MetricsProvider
from registry.service import ModelRegistry
from workflows.canary_step import CanaryStepWorkflow
from workflows.incident import IncidentWorkflow
from workflows.shadow import RetireShadowWorkflow
from workflows.watch import ModelWatchWorkflow


def worker_identity() -> str:
    return f"fairlane-worker@{socket.gethostname()}"


def build_worker(
    client: Client,
    settings: Settings,
    trail: AuditTrail,
    providers: Mapping[str, MetricsProvider] | None = None,
) -> Worker:
    """The worker; ``providers`` replaces the metrics providers the canary and the monitor read."""
    if settings.router_token is None:
        raise SystemExit("FAIRLANE_ROUTER_TOKEN is not set: the worker cannot reach the router")
    router_token = settings.router_token.get_secret_value()
    routing = RoutingActivities(router_token)
    if providers is None:
        configured: list[MetricsProvider] = [DecisionLogProvider(router_token)]
        if settings.prometheus_url:
            configured.append(PrometheusProvider(settings.prometheus_url))
        providers = {provider.name: provider for provider in configured}
    canary = CanaryActivities(providers)
    monitor = MonitorActivities(providers)
    registry = ModelRegistry(trail.engine)
    incidents = IncidentActivities(client, settings.task_queue, registry, settings.playbooks_dir)
    notify = NotifyActivities(settings.notify_webhook_url, settings.notify_timeout_s)
    audit = AuditActivities(trail)
    analysis = AnalysisActivities(settings.data_dir.resolve(), registry)
    external = ExternalTrainingActivities(settings.api_url)
    identity = worker_identity()
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[IncidentWorkflow, CanaryStepWorkflow, RetireShadowWorkflow, ModelWatchWorkflow],
        activities=[
            routing.read_route,
            routing.set_route,
            routing.deploy_version,
            canary.canary_analysis,
            monitor.evaluate_monitor_window,
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
        interceptors=[AuditInterceptor(trail, identity)],
        identity=identity,
    )

"""The Fairlane services' own metrics: the worker's (through Temporal's Prometheus
exporter) and the API's ``/metrics`` (requests, alerts, open incidents by phase)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from activities.audit_events import AuditActivities
    from activities.audit_interceptor import AuditInterceptor
    from activities.metrics import ACTIVITY_ATTEMPTS, PHASE_TRANSITIONS
    from api.app import create_app
    from api.metrics import count_alert_received
    from api.tokens import Role, issue_token
    from audit import AuditTrail
    from config import Settings
    from contracts.audit import AuditEvent
    from contracts.incident import SA_PHASE, WORKFLOW_TYPE, Phase
    from stack.temporal import worker_runtime
    from store.db import create_tables, make_engine
    from tests.fixtures.services import free_port, serve

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the series carrying ``labels`` (others summed away)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


# ---- the worker ------------------------------------------------------------------------


@activity.defn
async def flaky(note: str) -> str:
    if activity.info().attempt == 1:
        raise ApplicationError("registry timed out", type="RegistryTimeout")
    return note


@workflow.defn(sandboxed=False)  # a test's workflow; the module imports HTTP clients
class PhasedWorkflow:
    """A flaky activity (one failed attempt, one completed), then a phase change."""

    @workflow.run
    async def run(self) -> None:
        retry = RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=3)
        await workflow.execute_activity(
            flaky, "x", start_to_close_timeout=timedelta(seconds=10), retry_policy=retry
        )
        event = AuditEvent(
            event_id=f"{workflow.info().workflow_id}/phase/1",
            incident_id=workflow.info().workflow_id,
            kind="phase.changed",
            actor="workflow",
            detail={"from": "open", "to": "running"},
            at=workflow.now(),
        )
        await workflow.execute_activity_method(
            AuditActivities.record_audit_event, event, start_to_close_timeout=timedelta(seconds=10)
        )


def test_no_worker_runtime_without_an_address() -> None:
    assert worker_runtime(Settings(worker_metrics_address=None)) is None


async def test_the_worker_serves_sdk_and_fairlane_metrics_on_one_port(
    time_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = worker_runtime(Settings(worker_metrics_address=address))
    assert isinstance(runtime, Runtime)
    client = await Client.connect(
        time_env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    create_tables(engine)
    trail = AuditTrail(engine)
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[PhasedWorkflow],
        activities=[flaky, AuditActivities(trail).record_audit_event],
        interceptors=[AuditInterceptor(trail, "test-worker")],
    ):
        await client.execute_workflow(PhasedWorkflow.run, id=f"inc-{queue}", task_queue=queue)

    async with httpx.AsyncClient() as http:
        samples = parse((await http.get(f"http://{address}/metrics")).text)
    attempts = {
        (activity_type, outcome): value(
            samples, ACTIVITY_ATTEMPTS, activity_type=activity_type, outcome=outcome
        )
        for activity_type in ("flaky", "record_audit_event")
        for outcome in ("started", "completed", "failed")
    }
    assert attempts == {
        ("flaky", "started"): 2,
        ("flaky", "completed"): 1,
        ("flaky", "failed"): 1,
        ("record_audit_event", "started"): 1,
        ("record_audit_event", "completed"): 1,
        ("record_audit_event", "failed"): 0,
    }
    assert value(samples, PHASE_TRANSITIONS, phase="running") == 1
    assert value(samples, ACTIVITY_ATTEMPTS, task_queue=queue) == 6  # the SDK adds the queue
    assert any(name.startswith("temporal_") for name, _ in samples)  # the SDK's own


# ---- the API -------------------------------------------------------------------------


@dataclass
class Api:
    url: str
    app: FastAPI
    tokens: dict[str, str]

    async def get(self, path: str, who: str | None = None) -> httpx.Response:
        headers = {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            return await client.get(path, headers=headers)

    async def samples(self) -> Samples:
        response = await self.get("/metrics", "auditor")
        assert response.status_code == 200, response.text
        return parse(response.text)


@pytest_asyncio.fixture(scope="module")
async def api(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("api-metrics"),
        temporal_address=dev_env.client.service_client.config.target_host,
    )
    roles = {"auditor": Role.AUDITOR, "admin": Role.ADMIN, "ic": Role.INCIDENT_COMMANDER}
    tokens = {
        who: issue_token(settings.resolved_tokens_file, who, [role]) for who, role in roles.items()
    }
    app = create_app(settings)
    with serve(app, free_port()) as url:
        yield Api(url, app, tokens)


@pytest.mark.parametrize(("who", "status"), [(None, 401), ("ic", 403), ("admin", 200)])
async def test_api_metrics_need_an_auditor_or_admin(api: Api, who: str | None, status: int) -> None:
    response = await api.get("/metrics", who)
    assert response.status_code == status
    if status == 200:
        assert response.headers["content-type"].startswith("text/plain")
        assert not any(token in response.text for token in api.tokens.values())


async def test_api_requests_are_counted_by_route_template(api: Api) -> None:
    before = await api.samples()
    await api.get("/healthz")
    await api.get("/v1/incidents/inc-20260101-none", "auditor")
    await api.get("/no/such/page")
    after = await api.samples()

    def grew(**labels: str) -> float:
        name = "fairlane_http_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew(route="/healthz", status="200") == 1
    # one series per template, whatever the id
    assert grew(route="/v1/incidents/{incident_id}", method="GET") == 1
    assert grew(route="unmatched", status="404") == 1
    assert not any("inc-20260101-none" in str(labels) for _, labels in after)


async def test_alerts_received_are_counted(api: Api) -> None:
    count_alert_received(api.app, source="alertmanager", kind="firing")
    count_alert_received(api.app, source="alertmanager", kind="firing")
    count_alert_received(api.app, source="webhook", kind="resolved")
    samples = await api.samples()
    name = "fairlane_alerts_received_total"
    assert value(samples, name, source="alertmanager", kind="firing") == 2
    assert value(samples, name, source="webhook", kind="resolved") == 1


async def test_open_incidents_are_counted_by_phase(api: Api, dev_env: WorkflowEnvironment) -> None:
    """A running incident workflow (on a queue no worker polls) in awaiting_signoff."""
    phase = Phase.AWAITING_SIGNOFF.value
    gauge = "fairlane_open_incidents"
    baseline = value(await api.samples(), gauge, phase=phase)
    handle = await dev_env.client.start_workflow(
        WORKFLOW_TYPE,
        id=f"inc-metrics-{uuid.uuid4().hex[:8]}",
        task_queue=f"nobody-{uuid.uuid4().hex[:8]}",
        search_attributes=TypedSearchAttributes([SearchAttributePair(SA_PHASE, phase)]),
    )
    try:
        # Visibility is eventually consistent: wait for it, with a deadline, not a sleep.
        for _ in range(100):
            samples = await api.samples()
            if value(samples, gauge, phase=phase) == baseline + 1:
                break
            await asyncio.sleep(0.1)
        assert value(samples, gauge, phase=phase) == baseline + 1
        assert {p.value for p in Phase if not p.closed} <= {
            dict(labels)["phase"] for name, labels in samples if name == gauge
        }
    finally:
        await handle.terminate("test over")

"""A real Alertmanager, pointed at the API, contains a model with no human in the loop.

Real programs throughout: Debian's Alertmanager (installed by the test set-up) with a
webhook receiver authenticated by an alert_source token, the API over HTTP, the dev
server and the production worker, and the reference router, whose route must really
flip and whose live decisions must really come from the fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from contracts.routing import Serving
from tests.fixtures.api import Api, served_api
from tests.fixtures.gateway import credit_request
from tests.fixtures.monitoring_programs import running_alertmanager
from tests.fixtures.services import RouterService

PROBE = credit_request(
    applicant_id="am-probe",
    income=52_000.0,
    credit_history_years=6.0,
    debt_ratio=0.2,
    zip_code="Z03",
    group="B",
)


@pytest_asyncio.fixture
async def api(
    dev_env: WorkflowEnvironment, router_service: RouterService, tmp_path: Path
) -> AsyncIterator[Api]:
    await router_service.reset()
    async with served_api(dev_env, router_service, tmp_path) as service:
        yield service


def _alert(starts_at: datetime, ends_at: datetime | None = None) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "labels": {
            "alertname": "CreditLimitDisparity",
            "fairlane_model": "credit-limit",
            "severity": "page",
        },
        "annotations": {"summary": "group B limits 30% lower at equal income and credit"},
        "startsAt": starts_at.isoformat(),
        "generatorURL": "http://prometheus.example/graph?g0.expr=fairness_gap",
    }
    if ends_at is not None:
        alert["endsAt"] = ends_at.isoformat()
    return alert


async def _eventually(probe: Callable[[], Any], timeout_s: float = 60) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("never happened")
        await asyncio.sleep(0.2)


async def test_an_alertmanager_alert_flips_the_route_and_its_resolution_reaches_the_incident(
    api: Api, router_service: RouterService, dev_env: WorkflowEnvironment
) -> None:
    webhook = f"{api.url}/v1/alerts/alertmanager"
    group_by = ("alertname", "fairlane_model")
    async with (
        running_alertmanager(webhook, api.tokens["alerts"], group_by=group_by) as alertmanager,
        httpx.AsyncClient(timeout=10) as http,
        api.client() as client,
        router_service.client() as router,
    ):
        fired_at = datetime.now(UTC) - timedelta(seconds=5)
        posted = await http.post(f"{alertmanager}/api/v2/alerts", json=[_alert(fired_at)])
        assert posted.status_code == 200, posted.text

        async def contained() -> bool:
            route = await router.get_route(router_service.model)
            return route.serving is Serving.FALLBACK

        await _eventually(contained)
        decision = await router.decide(router_service.model, PROBE)
        assert decision.served_by is Serving.FALLBACK

        async def watch() -> Any:
            """The watch, once it has opened its incident (the route flips just before)."""
            response = await client.get(
                "/v1/models/credit-limit/watch", headers=api.headers("auditor")
            )
            opened = response.status_code == 200 and response.json()["memory"]["open_incident"]
            return response.json() if opened else None

        state = await _eventually(watch)
        incident_id = state["memory"]["open_incident"]
        assert incident_id is not None

        async def incident(check: Callable[[dict[str, Any]], bool]) -> Any:
            async def probe() -> Any:
                response = await client.get(
                    f"/v1/incidents/{incident_id}", headers=api.headers("auditor")
                )
                return (
                    response.json()
                    if response.status_code == 200 and check(response.json())
                    else None
                )

            return await _eventually(probe)

        opened = await incident(lambda s: s["alerts"]["counts"]["received"] >= 1)
        assert opened["trigger"]["source"] == "alertmanager"
        assert opened["trigger"]["route_before"]["serving"] == "primary"
        assert opened["contained"] is True
        fingerprint = opened["trigger"]["alerts"][0]["alert"]["fingerprint"]
        assert opened["alerts"]["firing"] == [fingerprint]

        # Resolved at Alertmanager: it tells Fairlane, and the incident records it.
        resolved = await http.post(
            f"{alertmanager}/api/v2/alerts",
            json=[_alert(fired_at, ends_at=datetime.now(UTC) - timedelta(seconds=1))],
        )
        assert resolved.status_code == 200
        final = await incident(lambda s: s["alerts"]["counts"]["resolved"] == 1)
        assert final["alerts"]["firing"] == []
        assert final["alerts"]["counts"]["new"] == 1  # re-sends were repeats, not new alerts

        trail = await client.get(
            f"/v1/incidents/{incident_id}/trail", headers=api.headers("auditor")
        )
        kinds = [r["kind"] for r in trail.json()["records"]]
        assert kinds[0] == "incident.opened" and "alert.received" in kinds

        for workflow_id in (incident_id, "watch-credit-limit"):
            await dev_env.client.get_workflow_handle(workflow_id).terminate("test over")

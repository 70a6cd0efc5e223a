"""The API over real HTTP, against the real dev server, worker and router.

Authentication and roles on every route, bad input refused with a reason and nothing
recorded, and a real incident: the route flips at the router, sign-offs through the
API, a forged one refused, the trail readable by auditors only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config import Settings
from contracts.routing import Serving
from tests.fixtures.api import Api, served_api
from tests.fixtures.gateway import credit_request
from tests.fixtures.services import RouterService


@pytest.fixture(scope="module")
def api_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api")


@pytest_asyncio.fixture(scope="module")
async def api(
    dev_env: WorkflowEnvironment, router_service: RouterService, api_data: Path
) -> AsyncIterator[Api]:
    async with served_api(dev_env, router_service, api_data) as service:
        yield service


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


def _v1_routes() -> list[tuple[str, str]]:
    """Every /v1 operation the app serves, read from its OpenAPI document."""
    paths = create_app(Settings(data_dir=Path("/nonexistent"))).openapi()["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/v1")
        for method in operations
    ]


def _concrete(path: str) -> str:
    return (
        path.replace("{incident_id}", "inc-20261123-abcd")
        .replace("{model_id}", "credit-limit")
        .replace("{name}", "drift-rollback")
        .replace("{token}", "dG9rZW4=")
        .replace("{action}", "pause")
        .replace("{token_id}", "tok_0123456789ab")
    )


async def test_every_route_refuses_a_missing_or_unknown_token(api: Api) -> None:
    routes = _v1_routes()
    assert len(routes) >= 9
    async with api.client() as client:
        for method, path in routes:
            for headers in ({}, {"Authorization": "Bearer fl_not-a-real-token"}):
                response = await client.request(method, _concrete(path), headers=headers, json={})
                assert response.status_code == 401, (method, path, headers)


async def test_roles_are_enforced_on_every_route(api: Api) -> None:
    forbidden = [
        ("alerts", "GET", "/v1/incidents"),
        ("alerts", "GET", "/v1/models"),
        ("auditor", "POST", "/v1/incidents"),
        ("auditor", "POST", "/v1/models"),
        ("legal1", "POST", "/v1/incidents"),
        ("ic", "POST", "/v1/incidents/inc-20261123-abcd/signoffs"),
        ("auditor", "POST", "/v1/incidents/inc-20261123-abcd/signoffs"),
        ("legal1", "GET", "/v1/incidents/inc-20261123-abcd/trail"),
        ("ic", "GET", "/v1/trail/verify"),
        ("alerts", "GET", "/v1/playbooks"),
        ("alerts", "GET", "/v1/incidents/inc-20261123-abcd/report"),
        ("ic", "POST", "/v1/incidents/inc-20261123-abcd/training-callbacks/dG9rZW4="),
        ("auditor", "POST", "/v1/incidents/inc-20261123-abcd/training-callbacks/dG9rZW4=/failure"),
        ("legal1", "POST", "/v1/incidents/inc-20261123-abcd/canary/pause"),
        ("auditor", "POST", "/v1/incidents/inc-20261123-abcd/canary/abort"),
        ("admin", "POST", "/v1/incidents/inc-20261123-abcd/canary/promote_full"),
        ("legal1", "POST", "/v1/incidents/inc-20261123-abcd/containment/stand-down"),
        ("auditor", "POST", "/v1/incidents/inc-20261123-abcd/containment/stand-down"),
        ("admin", "POST", "/v1/incidents/inc-20261123-abcd/containment/stand-down"),
        ("ic", "POST", "/v1/alerts/alertmanager"),
        ("auditor", "POST", "/v1/alerts"),
        ("admin", "POST", "/v1/alerts"),
        ("auditor", "POST", "/v1/models/credit-limit/monitor"),
        ("alerts", "POST", "/v1/models/credit-limit/monitor/disarm"),
        ("alerts", "GET", "/v1/models/credit-limit/watch"),
        ("legal1", "GET", "/v1/models/credit-limit/watch/trail"),
        ("ic", "POST", "/v1/tokens"),
        ("auditor", "GET", "/v1/tokens"),
        ("alerts", "POST", "/v1/tokens/tok_0123456789ab/revoke"),
        ("ic", "POST", "/v1/tokens/tok_0123456789ab/expire"),
        ("ic", "POST", "/v1/models/credit-limit/decisions"),
        ("admin", "POST", "/v1/models/credit-limit/outcomes"),
    ]
    async with api.client() as client:
        for who, method, path in forbidden:
            response = await client.request(method, path, headers=api.headers(who), json={})
            assert response.status_code == 403, (who, method, path, response.text)
            assert "needs one of" in response.json()["detail"]


async def test_bad_input_gets_a_reason_and_records_nothing(api: Api) -> None:
    before = len(api.trail.records())
    async with api.client() as client:
        unknown = await client.post(
            "/v1/incidents",
            headers=api.headers("ic"),
            json={"model": "no-such-model", "summary": "x"},
        )
        assert unknown.status_code == 404
        assert unknown.json()["detail"] == "model 'no-such-model' is not registered"

        bad_playbook = await client.post(
            "/v1/incidents",
            headers=api.headers("ic"),
            json={"model": "credit-limit", "playbook": "nope", "summary": "x"},
        )
        assert bad_playbook.status_code == 422
        assert "no such playbook" in bad_playbook.json()["detail"]

        bad_severity = await client.post(
            "/v1/incidents",
            headers=api.headers("ic"),
            json={"model": "credit-limit", "severity": "sev9", "summary": "x"},
        )
        assert bad_severity.status_code == 422
        assert bad_severity.json()["detail"][0]["loc"] == ["body", "severity"]

        no_summary = await client.post(
            "/v1/incidents", headers=api.headers("ic"), json={"model": "credit-limit"}
        )
        assert no_summary.status_code == 422

        bad_manifest = await client.post(
            "/v1/models", headers=api.headers("admin"), json={"id": "Bad Id!", "versions": []}
        )
        assert bad_manifest.status_code == 422

        missing = await client.get("/v1/incidents/inc-20261123-none", headers=api.headers("ic"))
        assert missing.status_code == 404
    assert len(api.trail.records()) == before


async def test_a_real_incident_through_the_api(api: Api, router_service: RouterService) -> None:
    async with api.client() as client, router_service.client() as router:
        opened = await client.post(
            "/v1/incidents",
            headers=api.headers("ic"),
            json={"model": "credit-limit", "severity": "sev1", "summary": "30% lower limits"},
        )
        assert opened.status_code == 202, opened.text
        incident = opened.json()["incident_id"]
        assert opened.json()["ui_url"].endswith(f"/workflows/{incident}")

        state = await _wait(client, api, incident, lambda s: s["phase"] == "awaiting_signoff")
        assert state["contained"]
        route = await router.get_route(router_service.model)
        assert route.serving is Serving.FALLBACK
        decision = await router.decide(
            router_service.model,
            credit_request(
                applicant_id="api-probe",
                income=52_000.0,
                credit_history_years=6.0,
                debt_ratio=0.2,
                zip_code="Z03",
                group="B",
            ),
        )
        assert decision.served_by is Serving.FALLBACK

        # Contained: there is nothing to stand down, and the incident says so.
        stand_down = f"/v1/incidents/{incident}/containment/stand-down"
        nothing = await client.post(stand_down, headers=api.headers("ic"), json={"reason": "x"})
        assert nothing.status_code == 409
        assert "no containment is in progress" in nothing.json()["detail"]
        no_reason = await client.post(stand_down, headers=api.headers("ic"), json={})
        assert no_reason.status_code == 422 and no_reason.json()["detail"][0]["loc"] == [
            "body",
            "reason",
        ]

        path = f"/v1/incidents/{incident}/signoffs"
        forged = await client.post(
            path, headers=api.headers("comms"), json={"role": "legal", "decision": "approve"}
        )
        assert forged.status_code == 403
        assert "does not hold the role 'legal'" in forged.json()["detail"]
        not_required = await client.post(
            path,
            headers=api.headers("comms"),
            json={"role": "communications", "decision": "approve"},
        )
        assert not_required.status_code == 409
        assert "not required" in not_required.json()["detail"]
        bad_decision = await client.post(
            path, headers=api.headers("legal1"), json={"role": "legal", "decision": "maybe"}
        )
        assert bad_decision.status_code == 422

        for who, role in (("legal1", "legal"), ("compliance1", "compliance")):
            ok = await client.post(
                path, headers=api.headers(who), json={"role": role, "decision": "approve"}
            )
            assert ok.status_code == 200, ok.text
        final = await _wait(client, api, incident, lambda s: s["phase"] == "resolved")
        assert final["outcome"] == "all steps completed"

        late = await client.post(
            path, headers=api.headers("legal1"), json={"role": "legal", "decision": "reject"}
        )
        assert late.status_code == 409

        listed = await _wait_listed(client, api, incident)
        assert listed["model"] == "credit-limit" and listed["severity"] == "sev1"

        trail = await client.get(f"/v1/incidents/{incident}/trail", headers=api.headers("auditor"))
        assert trail.status_code == 200
        kinds = [r["kind"] for r in trail.json()["records"]]
        assert kinds[0] == "incident.opened" and kinds.count("signoff.decided") == 2
        assert trail.json()["checkpoints"], "the export carries what proves it offline"
        verify = await client.get("/v1/trail/verify", headers=api.headers("auditor"))
        assert verify.json()["ok"] is True
        assert verify.json()["checkpoints"]["signed_through"] is not None


async def test_the_drift_monitor_through_the_api(api: Api) -> None:
    watch = "/v1/models/credit-limit/watch"
    async with api.client() as client:
        policy = {"window": "6h", "interval": "1h", "consecutive_breaches": 3}
        armed = await client.post(
            "/v1/models/credit-limit/monitor",
            headers=api.headers("ic"),
            json={"policy": policy, "reason": "after promotion"},
        )
        assert armed.status_code == 202, armed.text
        assert armed.json()["watch"] == "watch-credit-limit"
        assert armed.json()["policy"]["consecutive_breaches"] == 3

        state = await _poll(client, api, watch, lambda s: s["status"] == "monitoring")
        assert state["memory"]["armed_by"] == "ic"
        assert state["memory"]["monitor"]["window"] == "6h"

        bad = await client.post(
            "/v1/models/credit-limit/monitor",
            headers=api.headers("ic"),
            json={"policy": {"interval": "2d", "window": "1d"}},
        )
        assert bad.status_code == 422 and "interval is longer than window" in bad.text
        unknown = await client.post("/v1/models/nobody/monitor", headers=api.headers("ic"), json={})
        assert unknown.status_code == 404
        no_watch = await client.post(
            "/v1/models/nobody/monitor/disarm", headers=api.headers("ic"), json={"reason": "x"}
        )
        assert no_watch.status_code == 404 and "no running watch" in no_watch.text

        disarmed = await client.post(
            "/v1/models/credit-limit/monitor/disarm",
            headers=api.headers("admin"),
            json={"reason": "model retired"},
        )
        assert disarmed.status_code == 202
        await _poll(client, api, watch, lambda s: s["status"] == "idle")
        trail = await _poll(
            client,
            api,
            f"{watch}/trail",
            lambda t: (
                [r["kind"] for r in t["records"]]
                == ["model.registered", "monitor.armed", "monitor.disarmed"]
            ),
        )
        assert [r["actor"] for r in trail["records"]] == ["admin", "ic", "admin"]


async def _poll(client: httpx.AsyncClient, api: Api, path: str, done: Any) -> Any:
    response = None
    for _ in range(200):
        response = await client.get(path, headers=api.headers("auditor"))
        if response.status_code == 200 and done(response.json()):
            return response.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never got there: {response.text if response else ''}")


async def _wait(client: httpx.AsyncClient, api: Api, incident: str, done: object) -> dict:  # type: ignore[type-arg]
    for _ in range(400):
        response = await client.get(f"/v1/incidents/{incident}", headers=api.headers("auditor"))
        if response.status_code == 200 and done(response.json()):  # type: ignore[operator]
            return response.json()  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"incident {incident} never reached the expected state: {response.text}")


async def _wait_listed(client: httpx.AsyncClient, api: Api, incident: str) -> dict:  # type: ignore[type-arg]
    """Visibility is eventually consistent: poll the filtered list until the incident shows."""
    for _ in range(200):
        listed = await client.get(
            "/v1/incidents",
            headers=api.headers("legal1"),
            params={"model": "credit-limit", "phase": "resolved"},
        )
        assert listed.status_code == 200
        match = [row for row in listed.json() if row["incident_id"] == incident]
        if match:
            return match[0]  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError("incident never appeared in the filtered list")

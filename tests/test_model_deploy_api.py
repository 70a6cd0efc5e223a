"""``POST /v1/models/{id}/deployments`` (``fairlane model deploy``): a registered version at
the model's routing target, with the manifest's contract and the registered rules.

A real gateway over loopback HTTP is the target; the API is Fairlane's app with its
registry, trail and tokens. Role-checked, on the trail with who and why, and each
refusal names what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from api.app import create_app as create_api_app
from api.tokens import Role, issue_token
from audit.trail import AuditTrail
from config.settings import Settings
from config.targets import RoutingTarget
from contracts.routing import Serving
from contracts.watch import watch_workflow_id
from demo.credit_model import DemoModelFiles, prepare_demo_model
from demo.scenario import demo_manifest
from router.app import create_app as create_gateway_app
from router.client import RouterClient
from tests.fixtures.gateway import RULES_VERSION, credit_request
from tests.fixtures.services import free_port, serve

GATEWAY_TOKEN = "deploy-api-gateway-token"
PEOPLE = {
    "ic": [Role.INCIDENT_COMMANDER],
    "admin": [Role.ADMIN],
    "auditor": [Role.AUDITOR],
    "legal": [Role.LEGAL],
}


@dataclass
class Stack:
    api: httpx.AsyncClient
    gateway_url: str
    tokens: dict[str, str]
    trail: AuditTrail
    files: DemoModelFiles

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> DemoModelFiles:
    return prepare_demo_model(
        tmp_path_factory.mktemp("deploy"), training_rows=3_000, validation_rows=500
    )


@pytest.fixture
def gateway_url(tmp_path: Path, files: DemoModelFiles) -> Iterator[str]:
    settings = Settings(
        data_dir=tmp_path / "gateway",
        router_token=SecretStr(GATEWAY_TOKEN),
        artifacts_dir=files.artifacts_dir,
    )
    with serve(create_gateway_app(settings), free_port()) as url:
        yield url


@pytest.fixture
def not_a_gateway() -> Iterator[str]:
    """A declared target that knows no model: every route of it is a 404."""
    with serve(FastAPI(), free_port()) as url:
        yield url


@pytest.fixture
async def stack(
    tmp_path: Path, files: DemoModelFiles, gateway_url: str, not_a_gateway: str
) -> AsyncIterator[Stack]:
    settings = Settings(
        data_dir=tmp_path / "api",
        artifacts_dir=files.artifacts_dir,
        router_url=gateway_url,
        router_token=SecretStr(GATEWAY_TOKEN),
        routing_targets={"elsewhere": RoutingTarget(url=not_a_gateway, token=SecretStr("x"))},
    )
    tokens = {who: issue_token(settings.resolved_tokens_file, who, r) for who, r in PEOPLE.items()}
    app = create_api_app(settings)
    from store.db import create_tables

    create_tables(app.state.registry._engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as api:
        stack = Stack(api, gateway_url, tokens, app.state.trail, files)
        body = demo_manifest(files).model_dump(mode="json")
        registered = await api.post(
            "/v1/models",
            json=body,
            params={"allow_undeployed": "true"},  # deploying needs the registration
            headers=stack.as_("ic"),
        )
        assert registered.status_code == 201, registered.text
        yield stack


async def test_an_incident_commander_deploys_a_registered_version(stack: Stack) -> None:
    model = stack.files.model_id
    response = await stack.api.post(
        f"/v1/models/{model}/deployments",
        json={"version": "v1", "reason": "first time in service"},
        headers=stack.as_("ic"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["target"], body["primary_version"], body["rules_version"]) == (
        "gateway",
        "v1",
        RULES_VERSION,
    )

    async with RouterClient(stack.gateway_url, GATEWAY_TOKEN) as gateway:
        deployment = await gateway.get_deployment(model)
        assert deployment.manifest.groups == {"group": ["A", "B"]}
        assert deployment.rules_version == RULES_VERSION
        answer = await gateway.decide(model, credit_request("d-1", 52_000, 6, 0.2, "Z03", "A"))
        assert answer.served_by is Serving.PRIMARY

    records = [
        r for r in stack.trail.records(watch_workflow_id(model)) if r.kind == "model.deployed"
    ]
    assert len(records) == 1
    detail = records[0].detail
    detail = json.loads(detail) if isinstance(detail, str) else detail
    assert records[0].actor == "ic"
    assert (detail["reason"], detail["target"], detail["version"]) == (
        "first time in service",
        "gateway",
        "v1",
    )


@pytest.mark.parametrize("who", ["auditor", "legal"])
async def test_other_roles_may_not_deploy(stack: Stack, who: str) -> None:
    response = await stack.api.post(
        f"/v1/models/{stack.files.model_id}/deployments",
        json={"version": "v1", "reason": "not mine to do"},
        headers=stack.as_(who),
    )
    assert response.status_code == 403
    async with RouterClient(stack.gateway_url, GATEWAY_TOKEN) as gateway:
        assert (await gateway.health()) is True
        with pytest.raises(Exception, match="404"):
            await gateway.get_route(stack.files.model_id)  # nothing was deployed


@pytest.mark.parametrize(
    ("model", "version", "status", "named"),
    [
        ("credit-limit", "v9", 404, "body.version: model 'credit-limit' has no registered version"),
        ("nobody", "v1", 404, "model: model 'nobody' is not registered"),
    ],
)
async def test_unknown_models_and_versions_are_named(
    stack: Stack, model: str, version: str, status: int, named: str
) -> None:
    response = await stack.api.post(
        f"/v1/models/{model}/deployments",
        json={"version": version, "reason": "try"},
        headers=stack.as_("admin"),
    )
    assert response.status_code == status
    detail = response.json()["detail"][0]
    assert f"{'.'.join(detail['loc'])}: {detail['msg']}".startswith(named)


async def test_a_target_that_does_not_know_the_model_is_named(stack: Stack) -> None:
    manifest = demo_manifest(stack.files).model_copy(update={"router": {"target": "elsewhere"}})
    changed = await stack.api.post(
        "/v1/models",
        json=manifest.model_dump(mode="json"),
        params={"reason": "routed elsewhere", "allow_undeployed": "true"},
        headers=stack.as_("admin"),
    )
    assert changed.status_code == 201, changed.text
    response = await stack.api.post(
        f"/v1/models/{stack.files.model_id}/deployments",
        json={"version": "v1", "reason": "try the other target"},
        headers=stack.as_("admin"),
    )
    assert response.status_code == 404
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["router", "target"]
    assert "routing target 'elsewhere' does not serve model 'credit-limit'" in detail["msg"]


async def test_a_bad_request_is_422_naming_the_field(stack: Stack) -> None:
    response = await stack.api.post(
        f"/v1/models/{stack.files.model_id}/deployments",
        json={"version": "v1"},
        headers=stack.as_("admin"),
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "reason"]

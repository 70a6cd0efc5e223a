"""The documented HTTP route contract, and the reference gateway as its implementation.

docs/route-contract.openapi.json is generated from the contract's pydantic models
(targets/http_contract.py); these tests fail when the file is stale, when the reference
gateway's own OpenAPI describes the route operations with other schemas, or when the
running gateway answers a request (good, stale, unknown, unauthenticated, invalid) with
a body the contract does not describe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from config import Settings
from contracts.routing import Route, RouteError, RouteUpdate, Serving, StaleRouteRefusal
from router.app import create_app as create_gateway
from targets.http_contract import DOCUMENT, ROUTE_PATH, render, route_contract_openapi
from tests.fixtures.services import RouterService

_ANNOTATIONS = {"title", "description"}


def _normalized(schema: Any) -> Any:
    """A JSON schema with what does not constrain a value set aside: titles and
    descriptions, a ``null`` default, and int/float spelling of numbers."""
    if isinstance(schema, dict):
        return {
            key: _normalized(value)
            for key, value in schema.items()
            if key not in _ANNOTATIONS and not (key == "default" and value is None)
        }
    if isinstance(schema, list):
        return [_normalized(item) for item in schema]
    if isinstance(schema, int | float) and not isinstance(schema, bool):
        return float(schema)
    return schema


def _ref(content: dict[str, Any]) -> str:
    ref: str = content["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def test_the_document_is_what_the_contract_models_build() -> None:
    assert DOCUMENT.read_text() == render(), (
        "docs/route-contract.openapi.json is stale: run `python -m targets.http_contract`"
    )


def test_the_contract_covers_read_set_auth_and_errors() -> None:
    document = route_contract_openapi()
    operations = document["paths"][ROUTE_PATH]
    assert set(operations) == {"get", "put"}
    assert set(operations["get"]["responses"]) == {"200", "401", "404"}
    assert set(operations["put"]["responses"]) == {"200", "401", "404", "409", "422"}
    assert _ref(operations["put"]["responses"]["409"]) == "StaleRouteRefusal"
    assert document["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_the_reference_gateway_documents_the_same_operations_and_schemas(
    tmp_path: Path,
) -> None:
    gateway = create_gateway(Settings(data_dir=tmp_path, router_token=SecretStr("t"))).openapi()
    contract = route_contract_openapi()
    ours, theirs = contract["paths"][ROUTE_PATH], gateway["paths"][ROUTE_PATH]
    assert set(ours) <= set(theirs)
    for method in ours:
        assert _ref(theirs[method]["responses"]["200"]) == _ref(ours[method]["responses"]["200"])
        [path_parameter] = [p for p in theirs[method]["parameters"] if p["in"] == "path"]
        assert path_parameter["name"] == "model" and path_parameter["required"]
    assert _ref(theirs["put"]["requestBody"]) == _ref(ours["put"]["requestBody"])
    for name in ("Route", "RouteUpdate", "Serving"):
        assert _normalized(gateway["components"]["schemas"][name]) == _normalized(
            contract["components"]["schemas"][name]
        ), name


# ---- the running reference gateway answers as documented --------------------------------


@pytest.fixture
async def gateway(router_service: RouterService) -> Any:
    await router_service.reset()
    headers = {"Authorization": f"Bearer {router_service.token}"}
    async with httpx.AsyncClient(base_url=router_service.url, headers=headers) as client:
        yield client
    await router_service.reset()


async def test_the_reference_gateway_answers_every_case_with_a_documented_body(
    gateway: httpx.AsyncClient, router_service: RouterService
) -> None:
    path = ROUTE_PATH.format(model=router_service.model)
    read = await gateway.get(path)
    assert read.status_code == 200
    current = Route.model_validate(read.json())

    update = RouteUpdate(
        serving=Serving.FALLBACK,
        primary_version=current.primary_version,
        shadow_versions=[current.primary_version],
        generation=current.generation + 1,
        updated_by="contract-test",
    )
    body = update.model_dump(mode="json")
    applied = await gateway.put(path, json=body)
    assert applied.status_code == 200
    assert Route.model_validate(applied.json()).generation == update.generation
    retried = await gateway.put(path, json=body)  # a retry: 200, nothing changed
    assert retried.status_code == 200 and retried.json() == applied.json()

    stale = await gateway.put(path, json={**body, "serving": "primary", "shadow_versions": []})
    assert stale.status_code == 409
    refusal = StaleRouteRefusal.model_validate(stale.json())
    assert refusal.current.generation == update.generation

    invalid = await gateway.put(path, json={**body, "generation": 0})
    assert invalid.status_code == 422
    assert RouteError.model_validate(invalid.json()).detail
    undeployed = await gateway.put(
        path, json={**body, "generation": update.generation + 1, "primary_version": "nope"}
    )
    assert undeployed.status_code == 422
    assert "nope" in str(RouteError.model_validate(undeployed.json()).detail)

    unknown = await gateway.get(ROUTE_PATH.format(model="never-deployed"))
    assert unknown.status_code == 404
    RouteError.model_validate(unknown.json())
    async with httpx.AsyncClient(base_url=router_service.url) as anonymous:
        for method in ("GET", "PUT"):
            refused = await anonymous.request(method, path, json=body)
            assert refused.status_code == 401
            RouteError.model_validate(refused.json())
    assert Route.model_validate((await gateway.get(path)).json()) == Route.model_validate(
        applied.json()
    )

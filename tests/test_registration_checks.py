"""Registration checks the manifest against the model: its artifacts load and fit, its
features are declared, and its routing target knows it. Each refusal is a 4xx naming the
field, and nothing of a refused manifest is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from pydantic import SecretStr
from sklearn.linear_model import LogisticRegression

from api.app import create_app
from api.tokens import Role, issue_token
from config import Settings
from contracts.model import ModelManifest
from registry.limits import ManifestRejected
from registry.service import ModelRegistry
from stack.loopback import free_port
from store.artifacts import ArtifactStore
from store.db import create_tables, make_engine
from tests.fixtures.gateway import deploy_credit
from tests.fixtures.services import ROUTER_TOKEN, RouterService, serve

# --- the registry on a model of another domain ------------------------------------------------


def hiring(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "hiring",
        "versions": [{"version": "v1", "artifact": "hiring/v1.skops"}],
        "primary_version": "v1",
        "label": "hired",
        "outcomes": {"decision": "hired"},
        "features": [
            {"name": "years", "type": "numeric"},
            {"name": "tests", "type": "numeric"},
        ],
        "protected_attributes": ["race"],
        "router": {"target": "gateway"},
    }
    return base | changes


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    rng = np.random.default_rng(1)
    rows = pd.DataFrame({"years": rng.uniform(0, 20, 200), "tests": rng.uniform(0, 1, 200)})
    hired = (rows["years"] / 20 + rows["tests"] > 1).astype(int)
    artifacts = ArtifactStore(tmp_path / "artifacts")
    artifacts.save(LogisticRegression().fit(rows, hired), "hiring", "v1.skops")
    return artifacts


@pytest.fixture
def registry(store: ArtifactStore, tmp_path: Path) -> ModelRegistry:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    create_tables(engine)
    return ModelRegistry(engine, store)


def refused(registry: ModelRegistry, manifest: dict[str, Any]) -> ManifestRejected:
    with pytest.raises(ManifestRejected) as error:
        registry.register(ModelManifest.model_validate(manifest), "admin")
    assert registry.get(manifest["id"]) is None  # nothing half-applied
    return error.value


def test_a_bare_classifier_that_fits_its_manifest_registers(registry: ModelRegistry) -> None:
    assert registry.register(ModelManifest.model_validate(hiring()), "admin") == 1
    stored = registry.get("hiring")
    assert stored is not None and stored.versions[0].sha256 is not None


@pytest.mark.parametrize(
    ("changes", "loc", "says"),
    [
        ({"features": []}, ("features",), "declare the features"),
        (
            {"versions": [{"version": "v1", "artifact": "hiring/v0.skops"}]},
            ("versions", 0, "artifact"),
            "does not exist",
        ),
        (
            {"versions": [{"version": "v1", "artifact": "hiring/v1.skops", "sha256": "0" * 64}]},
            ("versions", 0, "sha256"),
            "not the",
        ),
        (
            {"features": [{"name": "years", "type": "numeric"}]},
            ("versions", 0, "artifact"),
            "the model takes ['tests'], which the manifest's features do not declare",
        ),
        (
            {
                "features": [
                    {"name": "years", "type": "numeric"},
                    {"name": "tests", "type": "numeric"},
                    {"name": "school", "type": "categorical"},
                ]
            },
            ("features", 2, "name"),
            "no version of the model takes 'school'",
        ),
        (
            {"outcomes": {"decision": "hired", "amount": "salary"}},
            ("versions", 0, "artifact"),
            "no amount model",
        ),
    ],
)
def test_a_manifest_that_does_not_fit_its_model_is_refused_by_field(
    registry: ModelRegistry, changes: dict[str, Any], loc: tuple[Any, ...], says: str
) -> None:
    error = refused(registry, hiring(**changes))
    assert error.loc == loc
    assert says in error.msg


def test_an_artifact_that_is_not_a_model_is_refused(
    registry: ModelRegistry, store: ArtifactStore
) -> None:
    store.save({"weights": [1, 2, 3]}, "hiring", "v2.skops")
    manifest = hiring(versions=[{"version": "v2", "artifact": "hiring/v2.skops"}])
    error = refused(registry, {**manifest, "primary_version": "v2"})
    assert error.loc == ("versions", 0, "artifact")
    assert "does not load as a model" in error.msg


def test_a_candidate_added_later_is_checked_too(
    registry: ModelRegistry, store: ArtifactStore
) -> None:
    from contracts.model import ModelVersion

    registry.register(ModelManifest.model_validate(hiring()), "admin")
    rows = pd.DataFrame({"years": [1.0, 9.0], "school": [0.0, 1.0]})
    store.save(LogisticRegression().fit(rows, [0, 1]), "hiring", "v2.skops")
    with pytest.raises(ManifestRejected, match="which the manifest's features do not declare"):
        registry.add_version(
            "hiring", ModelVersion(version="v2", artifact="hiring/v2.skops"), "incident"
        )
    stored = registry.get("hiring")
    assert stored is not None and [v.version for v in stored.versions] == ["v1"]


# --- over HTTP: the routing target must know the model ------------------------------------------


@dataclass
class Api:
    url: str
    tokens: dict[str, str]
    settings: Settings

    def post(self, manifest: dict[str, Any], **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens['admin']}"}
        return httpx.post(
            f"{self.url}/v1/models", headers=headers, json=manifest, params=params, timeout=30
        )

    def stored(self, model: str) -> ModelManifest | None:
        return ModelRegistry(make_engine(self.settings.resolved_database_url)).get(model)


@pytest.fixture
def api(tmp_path: Path, router_service: RouterService) -> Iterator[Api]:
    settings = Settings(
        data_dir=tmp_path / "data",
        artifacts_dir=router_service.files.artifacts_dir,
        temporal_address=f"127.0.0.1:{free_port()}",
        router_url=router_service.url,
        router_token=SecretStr(ROUTER_TOKEN),
    )
    create_tables(make_engine(settings.resolved_database_url))
    tokens = {"admin": issue_token(settings.resolved_tokens_file, "admin", [Role.ADMIN])}
    with serve(create_app(settings), free_port()) as url:
        yield Api(url, tokens, settings)


def credit(router_service: RouterService, model: str, **changes: Any) -> dict[str, Any]:
    from tests.fixtures.incidents import manifest_for

    body = manifest_for(router_service).model_dump(mode="json")
    return {**body, "id": model, **changes}


def test_a_model_its_routing_target_does_not_know_is_refused_naming_router_target(
    api: Api, router_service: RouterService
) -> None:
    response = api.post(credit(router_service, "credit-new"))

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "router", "target"]
    assert "not deployed there" in problem["msg"]
    assert "fairlane model deploy credit-new" in problem["msg"]
    assert api.stored("credit-new") is None


def test_register_undeployed_then_deploy_is_the_documented_order(
    api: Api, router_service: RouterService
) -> None:
    registered = api.post(credit(router_service, "credit-later"), allow_undeployed="true")
    assert registered.status_code == 201, registered.text

    files = router_service.files

    async def deploy() -> None:
        async with router_service.client() as client:
            await deploy_credit(
                client, "credit-later", {files.version: files.artifact_name}, files.version
            )

    asyncio.run(deploy())
    changed = api.post(
        credit(router_service, "credit-later", description="deployed"), reason="deployed now"
    )
    assert changed.status_code == 201, changed.text
    assert changed.json()["revision"] == 2


def test_the_deployed_demo_model_registers_and_bad_fields_are_named(
    api: Api, router_service: RouterService
) -> None:
    model = router_service.model
    assert api.post(credit(router_service, model)).status_code == 201

    cases: list[tuple[dict[str, Any], list[Any]]] = [
        ({"features": []}, ["body", "features"]),
        ({"surprise": 1}, ["body", "surprise"]),
        (
            {"versions": [{"version": "v1", "artifact": "credit-limit/none.skops"}]},
            ["body", "versions", 0, "artifact"],
        ),
        (
            {"features": [{"name": "income", "type": "numeric"}]},
            ["body", "versions", 0, "artifact"],
        ),
        (
            {
                "strata": ["income_level"],
                "bins": {
                    "income_level": {
                        "feature": "income",
                        "bins": [{"label": "low", "below": 1}, {"label": "high", "at_least": 2}],
                    }
                },
            },
            ["body", "bins", "income_level"],
        ),
    ]
    for changes, loc in cases:
        response = api.post(credit(router_service, model, **changes), reason="try")
        assert response.status_code == 422, (changes, response.text)
        locs = [problem["loc"][: len(loc)] for problem in response.json()["detail"]]
        assert loc in locs, (changes, locs)
    stored = api.stored(model)
    assert stored is not None and len(stored.features) == 4  # the first registration, intact

"""Issue 13, part 2: no code from a caller's path.

An insider who registers a manifest, posts a training callback, holds the router's
token or can write the data directory must not get Fairlane to run code from a file
they name, write outside the data directory, or complete another incident's step.
Every attack here is proven by its effect: a pickle that would create a marker file
when unpickled, files outside the data directory, versions in the registry.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import skops.io as sio
from pydantic import SecretStr, ValidationError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from analysis.models import ModelFileError, load_artifact
from analysis.reports import write_report
from api.app import create_app
from api.tokens import Role, issue_token
from config import Settings
from contracts.analysis import TrainingResult
from contracts.model import ModelManifest
from demo.credit_model import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    DemoModelFiles,
    prepare_demo_model,
    save_model,
    train_credit_model,
)
from demo.dataset import generate_applicants
from incidents.training_callbacks import TrainingCallbacks
from registry.limits import ManifestRejected
from registry.service import ModelRegistry
from router.app import create_app as create_router_app
from router.client import RouterClient, RouterError
from store.artifacts import ArtifactError, ArtifactStore
from store.db import create_tables, make_engine
from store.paths import PathEscape, under
from tests.fixtures.gateway import credit_manifest, deploy_credit
from tests.fixtures.services import free_port, serve

ROUTER_TOKEN = "router-token-for-no-code-tests"


class _Marker:
    """Unpickling this creates ``path``: the proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def evil_pickle(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"approval": _Marker(marker)}, protocol=4))
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoModelFiles:
    return prepare_demo_model(
        tmp_path_factory.mktemp("no-code"), training_rows=2_000, validation_rows=200
    )


@pytest.fixture
def store(demo: DemoModelFiles) -> ArtifactStore:
    return ArtifactStore(demo.artifacts_dir)


def manifest(artifact: str, version: str = "v1", **extra: Any) -> dict[str, Any]:
    return {
        "id": "credit-limit",
        "versions": [{"version": version, "artifact": artifact, **extra}],
        "primary_version": version,
        "outcomes": {"decision": "approved", "amount": "credit_limit"},
        "features": [
            *({"name": name, "type": "numeric"} for name in NUMERIC_FEATURES),
            *({"name": name, "type": "categorical"} for name in CATEGORICAL_FEATURES),
        ],
        "protected_attributes": ["group"],
        "router": {"target": "gateway"},
    }


@dataclass
class Api:
    url: str
    tokens: dict[str, str]
    settings: Settings

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def registry(self) -> ModelRegistry:
        return ModelRegistry(make_engine(self.settings.resolved_database_url))


@pytest.fixture
def api(tmp_path: Path, demo: DemoModelFiles) -> Iterator[Api]:
    """The API over real HTTP, with Temporal unreachable: nothing here may need it."""
    settings = Settings(
        data_dir=tmp_path / "data",
        artifacts_dir=demo.artifacts_dir,
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    create_tables(make_engine(settings.resolved_database_url))
    people = {"admin": [Role.ADMIN], "pipeline": [Role.TRAINING_PIPELINE]}
    tokens = {
        who: issue_token(settings.resolved_tokens_file, who, roles) for who, roles in people.items()
    }
    with serve(create_app(settings), free_port()) as url:
        yield Api(url, tokens, settings)


def _locs(response: httpx.Response) -> list[list[Any]]:
    return [problem["loc"] for problem in response.json()["detail"]]


# --- a pickle named by a caller never runs ---------------------------------------------------


def test_a_manifest_naming_a_pickle_by_absolute_path_is_refused_and_it_never_runs(
    api: Api, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned-absolute"
    payload = evil_pickle(tmp_path / "elsewhere" / "model.joblib", marker)

    with api.client() as client:
        refused = client.post(
            "/v1/models", headers=api.headers("admin"), json=manifest(str(payload))
        )

    assert refused.status_code == 422, refused.text
    assert ["body", "versions", 0, "artifact"] in _locs(refused)
    assert "relative name" in refused.text
    assert not marker.exists()
    assert api.registry().get("credit-limit") is None


def test_a_pickle_inside_the_artifacts_directory_is_refused_at_registration(
    api: Api, store: ArtifactStore, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned-registration"
    evil_pickle(store.root / "credit-limit" / "evil.joblib", marker)

    with api.client() as client:
        refused = client.post(
            "/v1/models",
            headers=api.headers("admin"),
            json=manifest("credit-limit/evil.joblib"),
        )

    assert refused.status_code == 422, refused.text
    assert _locs(refused) == [["body", "versions", 0, "artifact"]]
    assert "pickle" in refused.text
    assert not marker.exists()
    assert api.registry().get("credit-limit") is None


def test_a_pickle_with_its_right_digest_is_still_not_loaded(
    store: ArtifactStore, tmp_path: Path
) -> None:
    """Someone who writes the data directory and the database: the loader still refuses."""
    marker = tmp_path / "pwned-loader"
    evil_pickle(store.root / "credit-limit" / "evil2.joblib", marker)
    name = "credit-limit/evil2.joblib"
    digest = hashlib.sha256(store.path(name).read_bytes()).hexdigest()

    with pytest.raises(ModelFileError, match="pickle"):
        load_artifact(store, name, digest)
    assert not marker.exists()


def test_a_skops_file_needing_an_untrusted_type_is_refused(store: ArtifactStore) -> None:
    model = Pipeline([("run", FunctionTransformer(os.system))])
    path = store.root / "credit-limit" / "system.skops"
    sio.dump(model, path)

    with pytest.raises(ArtifactError, match="does not trust") as refused:
        store.digest("credit-limit/system.skops")
    assert refused.value.field == "artifact"
    assert "system" in str(refused.value)


def test_the_router_refuses_a_path_and_a_pickle_even_with_its_token(
    store: ArtifactStore, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned-router"
    payload = evil_pickle(store.root / "credit-limit" / "evil3.joblib", marker)
    settings = Settings(
        data_dir=tmp_path / "router",
        artifacts_dir=store.root,
        router_token=SecretStr(ROUTER_TOKEN),
    )

    async def attempt() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_router_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as raw:
            return [
                await raw.put(
                    "/v1/models/credit-limit/deployment",
                    headers={"Authorization": f"Bearer {ROUTER_TOKEN}"},
                    json={
                        "versions": versions,
                        "primary_version": "v1",
                        "manifest": credit_manifest("credit-limit", versions).model_dump(
                            mode="json"
                        ),
                    },
                )
                for versions in ({"v1": str(payload)}, {"v1": "credit-limit/evil3.joblib"})
            ]

    refusals = asyncio.run(attempt())
    assert [r.status_code for r in refusals] == [422, 422]
    assert "relative name" in refusals[0].text
    assert "pickle" in refusals[1].text
    assert not marker.exists()


# --- a file swapped under a version name is refused ------------------------------------------


def test_a_file_swapped_after_registration_is_refused_by_every_loader(
    demo: DemoModelFiles, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    name, _ = save_model(
        store, train_credit_model(generate_applicants(1_000, 3), "v1"), "m", "v1.skops"
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'fairlane.db'}")
    create_tables(engine)
    registry = ModelRegistry(engine, store)
    registry.register(ModelManifest.model_validate(manifest(name)), "admin")
    registered = registry.get("credit-limit")
    assert registered is not None and registered.versions[0].sha256 is not None
    pinned = registered.versions[0].sha256
    assert load_artifact(store, name, pinned).version == "v1"

    # the same version name, another (biased) model: a valid skops file, swapped in place
    other = train_credit_model(generate_applicants(1_000, 4), "v1")
    save_model(store, other, "m", "v1.skops")

    with pytest.raises(ModelFileError, match="changed after registration"):
        load_artifact(store, name, pinned)

    # the router pinned the digest it deployed; after a restart it refuses the swapped file
    settings = Settings(
        data_dir=tmp_path / "router", artifacts_dir=store.root, router_token=ROUTER_TOKEN
    )
    save_model(store, train_credit_model(generate_applicants(1_000, 3), "v1"), "m", "v1.skops")

    async def deploy_swap_restart() -> int:
        transport = httpx.ASGITransport(app=create_router_app(settings))
        async with RouterClient("http://router", ROUTER_TOKEN, transport=transport) as router:
            await deploy_credit(router, "credit-limit", {"v1": name}, "v1")
        save_model(store, other, "m", "v1.skops")  # swapped
        async with RouterClient("http://router", ROUTER_TOKEN, transport=transport) as router:
            with pytest.raises(RouterError, match="changed after registration") as redeployed:
                await deploy_credit(router, "credit-limit", {"v1": name}, "v1")  # would re-pin it
            assert redeployed.value.status_code == 422
        restarted = httpx.ASGITransport(app=create_router_app(settings))
        async with httpx.AsyncClient(transport=restarted, base_url="http://router") as raw:
            answer = await raw.post(
                "/v1/models/credit-limit/decisions",
                headers={"Authorization": f"Bearer {ROUTER_TOKEN}"},
                json={
                    "id": "a-1",
                    "features": {
                        "income": 50_000.0,
                        "credit_history_years": 5.0,
                        "debt_ratio": 0.2,
                        "zip_code": "Z01",
                    },
                    "attributes": {"group": "A"},
                },
            )
            assert "changed after registration" in answer.text, answer.text
            return answer.status_code

    assert asyncio.run(deploy_swap_restart()) == 503


def test_registration_checks_a_given_digest(api: Api, demo: DemoModelFiles) -> None:
    with api.client() as client:
        refused = client.post(
            "/v1/models",
            headers=api.headers("admin"),
            json=manifest(demo.artifact_name, sha256="0" * 64),
        )
        assert refused.status_code == 422, refused.text
        assert _locs(refused) == [["body", "versions", 0, "sha256"]]
        accepted = client.post(
            "/v1/models",
            headers=api.headers("admin"),
            json=manifest(demo.artifact_name),
            params={"allow_undeployed": "true"},  # no router runs here
        )
        assert accepted.status_code == 201, accepted.text
    registered = api.registry().get("credit-limit")
    assert registered is not None
    assert registered.versions[0].sha256 == ArtifactStore(demo.artifacts_dir).digest(
        demo.artifact_name
    )


# --- nothing is written outside the data directory -------------------------------------------


@pytest.mark.parametrize("version", ["../../../x", "..", "a/b", "/etc/x", ".hidden", "a..b"])
def test_a_version_name_that_is_not_a_slug_is_refused_naming_the_field(
    api: Api, demo: DemoModelFiles, tmp_path: Path, version: str
) -> None:
    before = set(tmp_path.parent.rglob("*"))
    with api.client() as client:
        refused = client.post(
            "/v1/models",
            headers=api.headers("admin"),
            json=manifest(demo.artifact_name, version=version),
        )
    assert refused.status_code == 422, refused.text
    assert ["body", "versions", 0, "version"] in _locs(refused)
    with pytest.raises(ValidationError, match="version"):
        TrainingResult(version=version, artifact=demo.artifact_name)
    outside = {p for p in set(tmp_path.parent.rglob("*")) - before if tmp_path not in p.parents}
    assert outside == set()


def test_paths_are_built_only_under_their_root(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "secret").mkdir()
    (root / "link").symlink_to(tmp_path / "secret")

    assert under(root, "incidents", "inc-1") == root.resolve() / "incidents" / "inc-1"
    for parts in (("..", "x"), ("../x",), ("/etc/passwd",), ("link", "x"), ("a\\b",), ("",)):
        with pytest.raises(PathEscape):
            under(root, *parts)


def test_a_report_named_like_a_path_is_not_written(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "incidents" / "inc-1"
    with pytest.raises(PathEscape):
        write_report(folder, "../../../../escaped", TrainingResult(version="v", artifact="a"))
    assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*"))


# --- training callbacks: the token first, bound to its incident ------------------------------


def test_a_forged_callback_token_registers_nothing(api: Api, demo: DemoModelFiles) -> None:
    with api.client() as client:
        registered = client.post(
            "/v1/models",
            headers=api.headers("admin"),
            json=manifest(demo.artifact_name),
            params={"allow_undeployed": "true"},  # no router runs here
        )
        assert registered.status_code == 201
        forged = client.post(
            "/v1/incidents/inc-20261203-abcd/training-callbacks/" + "A" * 43,
            headers=api.headers("pipeline"),
            json={"version": "v9", "artifact": demo.artifact_name},
        )
        failure = client.post(
            "/v1/incidents/inc-20261203-abcd/training-callbacks/" + "A" * 43 + "/failure",
            headers=api.headers("pipeline"),
            json={"reason": "nope"},
        )
    assert forged.status_code == 404, forged.text
    assert failure.status_code == 404, failure.text
    manifest_now = api.registry().get("credit-limit")
    assert manifest_now is not None and [v.version for v in manifest_now.versions] == ["v1"]


def test_a_token_under_another_incidents_url_is_refused(api: Api, demo: DemoModelFiles) -> None:
    callbacks = TrainingCallbacks(make_engine(api.settings.resolved_database_url))
    secret = callbacks.issue("inc-20261203-aaaa", "remediate", 1, b"task-token-of-x")
    with api.client() as client:
        registered = client.post(
            "/v1/models",
            headers=api.headers("admin"),
            json=manifest(demo.artifact_name),
            params={"allow_undeployed": "true"},  # no router runs here
        )
        assert registered.status_code == 201, registered.text
        elsewhere = client.post(
            f"/v1/incidents/inc-20261203-bbbb/training-callbacks/{secret}",
            headers=api.headers("pipeline"),
            json={"version": "v9", "artifact": demo.artifact_name},
        )
    assert elsewhere.status_code == 404, elsewhere.text
    manifest_now = api.registry().get("credit-limit")
    assert manifest_now is not None and [v.version for v in manifest_now.versions] == ["v1"]
    binding = callbacks.redeem(secret, "inc-20261203-aaaa")
    assert binding is not None and not binding.answered  # still usable by its own incident
    assert binding.task_token == b"task-token-of-x" and binding.step == "remediate"


def test_the_registry_refuses_an_absolute_artifact_path_that_old_inputs_may_still_carry(
    tmp_path: Path,
) -> None:
    """Incidents opened before artifacts were names carry paths in their input: those
    must still decode (replay, running incidents), so the contract reads them and the
    registry (and the loader) refuse them."""
    old = ModelManifest.model_validate(manifest("/etc/passwd"))
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    create_tables(engine)
    registry = ModelRegistry(engine)
    with pytest.raises(ManifestRejected, match="relative name") as refused:
        registry.register(old, "mallory")
    assert refused.value.loc == ("versions", 0, "artifact")


def test_pickles_load_only_where_the_operator_opted_in(tmp_path: Path) -> None:
    import joblib

    model = train_credit_model(generate_applicants(500, 5), "v1")
    joblib.dump(model, tmp_path / "v1.joblib")
    digest = hashlib.sha256((tmp_path / "v1.joblib").read_bytes()).hexdigest()

    assert Settings(data_dir=tmp_path).artifact_store().allow_pickle is False
    with pytest.raises(ArtifactError, match="FAIRLANE_ALLOW_PICKLE_ARTIFACTS"):
        ArtifactStore(tmp_path).load("v1.joblib", digest)
    opted_in = ArtifactStore(tmp_path, allow_pickle=True)
    assert opted_in.load("v1.joblib", digest)["version"] == "v1"
    with pytest.raises(ArtifactError, match="changed after registration"):
        opted_in.load("v1.joblib", "0" * 64)

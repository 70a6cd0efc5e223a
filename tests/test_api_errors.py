"""The API answers with meaning, never 500 (issue 11): each case that answered 500 (or a
misleading 503) before, over real HTTP against the real dev server.

* Temporal unreachable (at start, too) or the database down: 503 with Retry-After on
  every route that needs them, and the API serves again once Temporal is back;
* lone surrogates anywhere in a body, over-deep nesting, over-large manifests and
  alerts: 4xx naming the field, and nothing stored, opened or signalled;
* bodies over the limit: 413 before authentication, with or without Content-Length;
* a stored manifest that no longer reads: left out of the list and named, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlmodel import Session
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.errors import install_error_handlers
from api.tokens import issue_token
from config import Settings
from contracts.bounds import MAX_DEPTH
from contracts.incident import SA_MODEL, WORKFLOW_TYPE
from contracts.model import Lineage, ModelManifest
from contracts.watch import watch_workflow_id
from registry.limits import MAX_MANIFEST_BYTES, ManifestRejected
from registry.service import ModelRegistry, RegisteredModel
from store.db import create_tables, make_engine
from tests.fixtures.api import PEOPLE, Api, served_api
from tests.fixtures.incidents import manifest_for
from tests.fixtures.services import RouterService, free_port, serve

INCIDENT = "inc-20261123-abcd"


@pytest_asyncio.fixture(scope="module")
async def api(
    dev_env: WorkflowEnvironment, router_service: RouterService, tmp_path_factory: Any
) -> AsyncIterator[Api]:
    async with served_api(dev_env, router_service, tmp_path_factory.mktemp("errors")) as served:
        yield served


@pytest.fixture
def manifest(router_service: RouterService) -> dict[str, Any]:
    return manifest_for(router_service).model_dump(mode="json")


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


def _with_parameters(manifest: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    lineage = Lineage(parent="v1", strategy="x", code_version="c").model_dump(mode="json")
    manifest["versions"][0]["lineage"] = {**lineage, "parameters": parameters}
    return manifest


def _raw(headers: dict[str, str], body: str) -> dict[str, Any]:
    """A JSON body sent as these exact bytes (``\\ud800`` stays a JSON escape)."""
    return {"content": body.encode(), "headers": {**headers, "content-type": "application/json"}}


async def _models(client: httpx.AsyncClient, api: Api) -> list[str]:
    listed = await client.get("/v1/models", headers=api.headers("admin"))
    assert listed.status_code == 200, listed.text
    return [model["id"] for model in listed.json()]


async def _incidents_on(env: WorkflowEnvironment, model: str) -> int:
    query = f"WorkflowType = '{WORKFLOW_TYPE}' AND {SA_MODEL.name} = '{model}'"
    return (await env.client.count_workflows(query)).count


# --- Temporal or the database unavailable --------------------------------------------


class _Gate:
    """A TCP forwarder to Temporal on a port of its own, opened when the test says so:
    "Temporal down" first, then "Temporal back" at the same address."""

    def __init__(self, target: str) -> None:
        self.port = free_port()
        self._host, port = target.rsplit(":", 1)
        self._target_port = int(port)
        self._server: asyncio.Server | None = None

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            self._host, self._target_port
        )

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@contextlib.contextmanager
def _served(settings: Settings) -> Iterator[Api]:
    tokens = {
        who: issue_token(settings.resolved_tokens_file, who, roles) for who, roles in PEOPLE.items()
    }
    with serve(create_app(settings), free_port()) as url:
        yield Api(url, tokens, None, settings)  # type: ignore[arg-type]


def _temporal_routes(model: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(who, method, path, body) for every route that needs Temporal."""
    incident = f"/v1/incidents/{INCIDENT}"
    alert = {"alerts": [{"model": model, "name": "Gap", "starts_at": "2026-11-23T10:00:00Z"}]}
    return [
        ("ic", "POST", "/v1/incidents", {"model": model, "summary": "gap"}),
        ("ic", "GET", "/v1/incidents", {}),
        ("auditor", "GET", incident, {}),
        ("legal1", "POST", f"{incident}/signoffs", {"role": "legal", "decision": "approve"}),
        ("ic", "POST", f"{incident}/canary/pause", {"reason": "look"}),
        ("auditor", "GET", f"{incident}/report", {}),
        ("alerts", "POST", "/v1/alerts", alert),
        ("ic", "POST", f"/v1/models/{model}/monitor", {}),
        ("ic", "POST", f"/v1/models/{model}/monitor/disarm", {"reason": "x"}),
        ("auditor", "GET", f"/v1/models/{model}/watch", {}),
    ]


async def test_temporal_down_at_start_is_503_until_it_is_back(
    dev_env: WorkflowEnvironment, router_service: RouterService, tmp_path: Path
) -> None:
    gate = _Gate(dev_env.client.service_client.config.target_host)
    settings = Settings(
        data_dir=tmp_path,
        artifacts_dir=router_service.files.artifacts_dir,
        temporal_address=f"127.0.0.1:{gate.port}",
        task_queue="nobody",
    )
    manifest = manifest_for(router_service).model_dump(mode="json")
    with _served(settings) as api:  # the API starts although Temporal is down
        async with api.client() as client:
            assert (await client.get("/healthz")).status_code == 200
            registered = await client.post(
                "/v1/models",
                headers=api.headers("admin"),
                json=manifest,
                params={"allow_undeployed": "true"},  # this API's gateway is not the router
            )
            assert registered.status_code == 201  # what needs no Temporal still works
            for who, method, path, body in _temporal_routes(manifest["id"]):
                response = await client.request(method, path, headers=api.headers(who), json=body)
                assert response.status_code == 503, (method, path, response.text)
                assert response.headers["Retry-After"].isdigit()
                assert "Temporal is unavailable" in response.json()["detail"], (method, path)
            # Registering needs no Temporal; the watch is told when the model is
            # registered again with Temporal back (below), and started then.

            await gate.open()
            try:
                listed = await client.get("/v1/incidents", headers=api.headers("ic"))
                assert listed.status_code == 200, listed.text
                again = await client.post("/v1/models", headers=api.headers("admin"), json=manifest)
                assert again.status_code == 201, again.text
                watch = dev_env.client.get_workflow_handle(f"watch-{manifest['id']}")
                assert (await watch.describe()).status == WorkflowExecutionStatus.RUNNING
                await watch.terminate("test over")
                missing = await client.get(f"/v1/incidents/{INCIDENT}", headers=api.headers("ic"))
                assert missing.status_code == 404  # a real "not found" stays one
            finally:
                await gate.close()


async def test_the_database_down_is_503(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        temporal_address=dev_env.client.service_client.config.target_host,
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/fairlane",
    )
    routes = [
        ("admin", "GET", "/v1/models", None),
        ("admin", "GET", "/v1/models/credit-limit", None),
        ("ic", "POST", "/v1/incidents", {"model": "credit-limit", "summary": "gap"}),
        ("auditor", "GET", f"/v1/incidents/{INCIDENT}/trail", None),
        ("auditor", "GET", "/v1/trail/verify", None),
    ]
    with _served(settings) as api:  # starts although the database is down
        async with api.client() as client:
            for who, method, path, body in routes:
                response = await client.request(method, path, headers=api.headers(who), json=body)
                assert response.status_code == 503, (method, path, response.text)
                assert response.headers["Retry-After"].isdigit()
                assert response.json()["detail"].startswith("the database is unavailable")
                assert "127.0.0.1" not in response.text  # internals stay in the log


# --- bad input: 4xx naming the field, nothing changed -----------------------------------


@pytest.mark.parametrize(
    ("who", "path", "body", "field"),
    [
        ("ic", "/v1/incidents", '{"model": "credit-limit", "summary": "a\\ud800b"}', "summary"),
        (
            "legal1",
            f"/v1/incidents/{INCIDENT}/signoffs",
            '{"role": "legal", "decision": "approve", "comment": "\\udfff"}',
            "comment",
        ),
        ("ic", f"/v1/incidents/{INCIDENT}/canary/pause", '{"reason": "\\ud800"}', "reason"),
        ("ic", "/v1/incidents", '{"model": "\\ud800x", "summary": "x"}', "model"),
    ],
)
async def test_a_lone_surrogate_is_422_naming_the_field(
    api: Api, dev_env: WorkflowEnvironment, who: str, path: str, body: str, field: str
) -> None:
    before = await _incidents_on(dev_env, "credit-limit")
    async with api.client() as client:
        response = await client.post(path, **_raw(api.headers(who), body))
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", field]
    assert "surrogate" in problem["msg"]
    assert await _incidents_on(dev_env, "credit-limit") == before


async def test_a_valid_surrogate_pair_is_text_like_any_other(api: Api) -> None:
    """An emoji spelled as a JSON surrogate pair is fine: only lone halves are refused."""
    async with api.client() as client:
        response = await client.post(
            f"/v1/incidents/{INCIDENT}/canary/pause",
            **_raw(api.headers("ic"), '{"reason": "\\ud83d\\ude00"}'),
        )
    assert response.status_code == 404  # got past validation, to Temporal: no such incident


async def test_a_surrogate_in_a_manifest_is_422_and_nothing_is_stored(
    api: Api, manifest: dict[str, Any]
) -> None:
    manifest["id"] = "surrogate-model"
    body = json.dumps(manifest).replace('"description": ""', '"description": "\\ud800"')
    async with api.client() as client:
        before = await _models(client, api)
        response = await client.post("/v1/models", **_raw(api.headers("admin"), body))
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", "description"]
        assert await _models(client, api) == before


async def test_the_422_answer_never_fails_to_encode_what_it_echoes() -> None:
    """Defence in depth behind the body check: FastAPI's own handler raised
    UnicodeEncodeError (a 500) echoing a lone surrogate back."""
    app = FastAPI()
    install_error_handlers(app)
    handler = app.exception_handlers[RequestValidationError]
    error = RequestValidationError(
        [{"type": "string_pattern_mismatch", "loc": ("body", "model"), "msg": "bad",
          "input": "\ud800" * 500, "ctx": {"pattern": "^x$"}},
         {"type": "model_attributes_type", "loc": ("body",), "msg": "bad", "input": [[[]]]}]
    )  # fmt: skip
    response = await handler(None, error)  # type: ignore[arg-type]
    detail = json.loads(bytes(response.body))["detail"]
    assert response.status_code == 422
    assert detail[0]["loc"] == ["body", "model"] and detail[0]["input"].startswith("\\ud800")
    assert len(detail[0]["input"]) <= 200 * len("\\ud800")
    assert "input" not in detail[1]  # containers are not reflected back


async def test_a_manifest_nested_too_deep_is_422_and_the_list_still_reads(
    api: Api, manifest: dict[str, Any]
) -> None:
    manifest["id"] = "deep-model"
    deep = _with_parameters(manifest, _nested(200))
    async with api.client() as client:
        before = await _models(client, api)
        response = await client.post("/v1/models", headers=api.headers("admin"), json=deep)
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert problem["loc"][:6] == ["body", "versions", 0, "lineage", "parameters", "a"]
        assert problem["type"] == "too_deep" and "32 levels" in problem["msg"]
        assert await _models(client, api) == before


def test_the_registry_refuses_what_it_could_not_read_back(
    router_service: RouterService, tmp_path: Path
) -> None:
    """The check is the registry's, whoever calls it: not only over HTTP."""
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    create_tables(engine)
    registry = ModelRegistry(engine)
    base = manifest_for(router_service).model_dump(mode="json")
    deep = ModelManifest.model_validate(_with_parameters(base, _nested(MAX_DEPTH + 5)))
    with pytest.raises(ManifestRejected) as refused:
        registry.register(deep, "admin")
    assert refused.value.loc[:4] == ("versions", 0, "lineage", "parameters")
    unencodable = manifest_for(router_service).model_copy(update={"description": "\udc80"})
    with pytest.raises(ManifestRejected, match="surrogate"):
        registry.register(unencodable, "admin")
    assert registry.list() == []


async def test_a_manifest_over_256_kib_is_422_and_over_the_body_limit_413(
    api: Api, manifest: dict[str, Any]
) -> None:
    manifest["id"] = "big-model"
    async with api.client() as client:
        before = await _models(client, api)
        large = {**manifest, "description": "x" * (MAX_MANIFEST_BYTES + 1)}
        response = await client.post("/v1/models", headers=api.headers("admin"), json=large)
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert problem["loc"] == ["body"] and "the manifest is" in problem["msg"]

        huge = {**manifest, "description": "x" * (10 * 1024 * 1024)}
        response = await client.post("/v1/models", headers=api.headers("admin"), json=huge)
        assert response.status_code == 413, response.text
        assert await _models(client, api) == before
        opened = await client.post(
            "/v1/incidents", headers=api.headers("ic"), json={"model": "big-model", "summary": "x"}
        )
        assert opened.status_code == 404  # never stored, so never sent to Temporal


async def test_a_stored_manifest_that_no_longer_reads_never_makes_a_500(api: Api) -> None:
    """A row written before today's checks (or altered in the database)."""
    engine = make_engine(api.settings.resolved_database_url)
    row = RegisteredModel(
        id="corrupt-model",
        manifest_json=json.dumps({"id": "corrupt-model", "nested": _nested(300)}),
        revision=1,
        registered_by="someone",
        registered_at=datetime.now(UTC),
    )
    with Session(engine) as session:
        session.add(row)
        session.commit()
    async with api.client() as client:
        listed = await client.get("/v1/models", headers=api.headers("admin"))
        assert listed.status_code == 200
        assert "corrupt-model" not in [m["id"] for m in listed.json()]
        assert listed.headers["X-Fairlane-Unreadable-Models"] == "corrupt-model"
        one = await client.get("/v1/models/corrupt-model", headers=api.headers("admin"))
        assert one.status_code == 409 and "corrupt-model" in one.json()["detail"]
        opened = await client.post(
            "/v1/incidents",
            headers=api.headers("ic"),
            json={"model": "corrupt-model", "summary": "x"},
        )
        assert opened.status_code == 409


async def test_an_alert_that_can_never_fit_is_413_not_503(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    alert = {
        "model": "never-signalled",
        "name": "Gap",
        "starts_at": "2026-11-23T10:00:00Z",
        "annotations": {"runbook": "x" * (3 * 1024 * 1024)},
    }
    async with api.client() as client:
        response = await client.post(
            "/v1/alerts", headers=api.headers("alerts"), json={"alerts": [alert]}
        )
    assert response.status_code == 413, response.text
    [problem] = response.json()["detail"]
    assert problem["field"] == "alerts[0]" and "at most" in problem["msg"]
    assert "Retry-After" not in response.headers
    with pytest.raises(RPCError) as missing:
        await dev_env.client.get_workflow_handle(watch_workflow_id("never-signalled")).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


# --- body limits ------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413_before_authentication(api: Api) -> None:
    over = b"x" * (api.settings.max_body_bytes + 1)

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(over), 64 * 1024):
            yield over[start : start + 64 * 1024]

    async with api.client() as client:
        declared = await client.post("/v1/incidents", content=over)
        assert declared.status_code == 413, declared.text
        assert "larger than" in declared.json()["detail"]
        streamed = await client.post("/v1/incidents", content=chunked())
        assert streamed.status_code == 413, streamed.text
        authenticated = await client.post("/v1/models", headers=api.headers("admin"), content=over)
        assert authenticated.status_code == 413
        # alerts (whole Alertmanager groups) have their own, larger limit
        alerts = await client.post("/v1/alerts", content=over)
        assert alerts.status_code == 401
        too_many = b"x" * (api.settings.max_alert_body_bytes + 1)
        assert (await client.post("/v1/alerts", content=too_many)).status_code == 413

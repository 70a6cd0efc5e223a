"""Routing targets belong to operators: a manifest cannot send the router token anywhere.

The attack this closes: an incident commander registered a manifest whose router URL
was a listener of their own, opened an incident, and the worker sent that listener
``Authorization: Bearer <router token>``. Here a real HTTP server on loopback stands in
for that listener and records every request; it must receive nothing, whether the URL
comes in through registration or through an old-style activity input.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import pytest_asyncio
import skops.io
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from sklearn.dummy import DummyClassifier
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.canary import CanaryActivities
from activities.monitor import MonitorActivities
from activities.routing import RoutingActivities
from api.app import create_app
from api.tokens import issue_token
from audit.trail import AuditTrail
from config import Settings
from config.targets import GATEWAY, RoutingTarget, TargetResolver
from contracts.canary import AnalysisRequest
from contracts.model import ModelManifest, RouterRef
from contracts.monitoring import EvaluationRequest, MonitoringPolicy
from contracts.routing import RouteSpec, RouteUpdate, Serving
from contracts.steps import ReadRouteInput, SetRouteInput, VerifyRouteInput
from contracts.watch import WatchInput
from fairness.live import LiveThresholds
from metrics.decision_log import DecisionLogProvider
from playbooks.loader import load_playbook_text
from stack.worker import build_worker
from tests.fixtures.api import PEOPLE, Api
from tests.fixtures.incidents import incident_input, manifest_for, start_incident, state_of
from tests.fixtures.services import RouterService, free_port, serve

ROUTER_TOKEN = "the-router-token-that-controls-every-model"


class Listener:
    """A hostile HTTP server on loopback: answers 200 to anything and keeps every
    request's method, path and headers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                seen.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers)}
                )
                body = b'{"serving": "fallback"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = _record

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @contextlib.contextmanager
    def running(self) -> Iterator[Listener]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()

    @property
    def authorization_headers(self) -> list[str]:
        return [
            value
            for request in self.requests
            for name, value in request["headers"].items()
            if name.lower() == "authorization"
        ]


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener().running() as running:
        yield running


def _resolver(router_url: str = "http://127.0.0.1:9") -> TargetResolver:
    return TargetResolver({GATEWAY: RoutingTarget(url=router_url, token=SecretStr(ROUTER_TOKEN))})


def _refused_as_unknown_target(error: ApplicationError, url: str) -> None:
    assert error.type == "UnknownRoutingTarget"
    assert error.non_retryable
    assert url in error.message and "not the URL of any declared routing target" in error.message
    assert ROUTER_TOKEN not in error.message


# ---- the worker: a credential goes only where it was declared ---------------------------


@pytest.mark.parametrize("operation", ["read", "set"])
async def test_an_old_style_router_url_that_is_no_declared_target_reaches_nothing(
    listener: Listener, operation: str
) -> None:
    """A ReadRouteInput/SetRouteInput naming the listener's URL (as histories from before
    targets did) is refused before any connection: no request, no Authorization header."""
    activities = RoutingActivities(_resolver())
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as refused:
        if operation == "read":
            await env.run(
                activities.read_route, ReadRouteInput(router_url=listener.url, model="credit")
            )
        else:
            update = RouteUpdate(
                serving=Serving.FALLBACK, primary_version="v1", generation=2, updated_by="x"
            )
            await env.run(
                activities.set_route,
                SetRouteInput(router_url=listener.url, model="credit", update=update),
            )
    _refused_as_unknown_target(refused.value, listener.url)
    assert listener.requests == []
    assert listener.authorization_headers == []


async def test_the_decision_log_never_sends_the_token_to_an_undeclared_url(
    listener: Listener,
) -> None:
    """The canary's and the drift monitor's reads go through the same declared targets."""
    providers = {"decision_log": DecisionLogProvider(_resolver())}
    now = datetime.now(UTC)
    analysis = AnalysisRequest(
        incident_id="inc-x",
        model="credit",
        router_url=listener.url,
        provider="decision_log",
        candidate_version="v2",
        since=now - timedelta(hours=1),
        until=now,
        look=1,
        alpha=0.05,
        thresholds=LiveThresholds(),
    )
    evaluation = EvaluationRequest(
        model="credit",
        router_url=listener.url,
        since=now - timedelta(hours=1),
        until=now,
        policy=MonitoringPolicy(),
    )
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as canary:
        await env.run(CanaryActivities(providers).canary_analysis, analysis)
    _refused_as_unknown_target(canary.value, listener.url)
    with pytest.raises(ApplicationError) as monitor:
        await env.run(MonitorActivities(providers).evaluate_monitor_window, evaluation)
    _refused_as_unknown_target(monitor.value, listener.url)
    assert listener.requests == []


async def test_an_undeclared_target_is_refused_without_a_request(listener: Listener) -> None:
    activities = RoutingActivities(_resolver(listener.url))
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            activities.read_route, ReadRouteInput(target="elsewhere", model="credit")
        )
    assert refused.value.type == "UnknownRoutingTarget" and refused.value.non_retryable
    assert "'elsewhere' is not declared" in refused.value.message
    assert listener.requests == []


async def test_a_target_id_with_another_url_beside_it_is_refused(listener: Listener) -> None:
    """A request may not pair a declared target with a URL of its own choosing."""
    activities = RoutingActivities(_resolver())
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            activities.read_route,
            ReadRouteInput(target=GATEWAY, router_url=listener.url, model="credit"),
        )
    assert refused.value.type == "UnknownRoutingTarget"
    assert listener.requests == []


async def test_an_old_style_router_url_that_is_a_declared_target_still_works(
    router_service: RouterService,
) -> None:
    """Incidents running since before targets keep working: their recorded URL is the
    declared gateway's, so the gateway's credential is used, at that URL."""
    activities = RoutingActivities(TargetResolver.single(router_service.url, router_service.token))
    route = await ActivityEnvironment().run(
        activities.read_route,
        ReadRouteInput(router_url=router_service.url + "/", model=router_service.model),
    )
    assert route.primary_version == router_service.files.version


# ---- settings -------------------------------------------------------------------------


def test_targets_are_declared_in_settings_and_gateway_is_the_reference_router(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "prod-token"
    token_file.write_text("prod-secret\n")
    monkeypatch.setenv(
        "FAIRLANE_ROUTING_TARGETS",
        json.dumps({"prod-gw": {"url": "https://gw.internal", "token_file": str(token_file)}}),
    )
    monkeypatch.setenv("FAIRLANE_ROUTER_URL", "http://127.0.0.1:8311")
    monkeypatch.setenv("FAIRLANE_ROUTER_TOKEN", "gateway-secret")
    resolver = Settings().target_resolver()
    assert resolver.ids == [GATEWAY, "prod-gw"]
    prod = resolver.resolve("prod-gw")
    assert (prod.url, prod.token) == ("https://gw.internal", "prod-secret")
    gateway = resolver.resolve(GATEWAY)
    assert (gateway.url, gateway.token) == ("http://127.0.0.1:8311", "gateway-secret")
    assert "secret" not in repr(prod)


def test_a_target_id_must_be_a_slug() -> None:
    with pytest.raises(ValidationError, match="lower-case slug"):
        Settings(routing_targets={"Prod GW": RoutingTarget(url="https://gw")})


def test_recorded_histories_with_router_urls_still_read() -> None:
    """Manifests and watch inputs recorded with `router: {url}` / `router_url` still read
    (tests/test_replay.py replays the recorded incidents and watches themselves)."""
    legacy = ModelManifest.model_validate(
        {**_manifest_body(), "router": {"url": "http://127.0.0.1:8300"}}
    )
    assert legacy.router == RouterRef(url="http://127.0.0.1:8300")
    watch = WatchInput.model_validate({"model": "credit", "router_url": "http://127.0.0.1:8300"})
    assert watch.router_ref() == RouterRef(url="http://127.0.0.1:8300")


# ---- registration: targets by id, changes by admins, on the trail -----------------------


def _manifest_body(target: str = GATEWAY) -> dict[str, Any]:
    return {
        "id": "credit-targets",
        "versions": [{"version": "v1", "artifact": "credit-targets/v1.skops"}],
        "primary_version": "v1",
        "outcomes": {"decision": "approved"},
        "features": [{"name": "score", "type": "numeric"}],
        "protected_attributes": ["group"],
        "router": {"target": target},
    }


UNDEPLOYED = {"allow_undeployed": "true"}  # no router runs here: deployed later


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The API alone (no Temporal needed to register), with `prod-gw` declared too."""
    settings = Settings(
        data_dir=tmp_path,
        temporal_address=f"127.0.0.1:{free_port()}",
        outside_end_check_s=0,
        router_token=SecretStr(ROUTER_TOKEN),
        routing_targets={"prod-gw": RoutingTarget(url="https://gw.internal")},
    )
    artifact = settings.resolved_artifacts_dir / "credit-targets" / "v1.skops"
    artifact.parent.mkdir(parents=True)
    scores = pd.DataFrame({"score": [0.0, 1.0]})
    skops.io.dump(DummyClassifier().fit(scores, [0, 1]), artifact)
    tokens = {
        who: issue_token(settings.resolved_tokens_file, who, roles) for who, roles in PEOPLE.items()
    }
    with serve(create_app(settings), free_port()) as url:
        yield Api(url, tokens, None, settings)  # type: ignore[arg-type]


async def test_registering_a_router_url_is_refused_and_the_listener_hears_nothing(
    api: Api, listener: Listener
) -> None:
    body = {**_manifest_body(), "router": {"url": listener.url}}
    async with api.client() as client:
        for who in ("ic", "admin"):
            refused = await client.post(
                "/v1/models", headers=api.headers(who), json=body, params=UNDEPLOYED
            )
            assert refused.status_code == 422, refused.text
            [problem] = refused.json()["detail"]
            assert problem["loc"] == ["body", "router", "url"]
            assert "never a URL" in problem["msg"]
        assert (await client.get("/v1/models", headers=api.headers("admin"))).json() == []
    assert listener.requests == []


async def test_an_unknown_target_is_refused_naming_router_target(api: Api) -> None:
    async with api.client() as client:
        refused = await client.post(
            "/v1/models",
            headers=api.headers("ic"),
            json=_manifest_body("my-laptop"),
            params=UNDEPLOYED,
        )
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["loc"] == ["body", "router", "target"]
    assert "'my-laptop' is not declared" in problem["msg"]


async def _trail(api: Api, model: str) -> list[dict[str, Any]]:
    async with api.client() as client:
        exported = await client.get(f"/v1/models/{model}/watch/trail", headers=api.headers("admin"))
    assert exported.status_code == 200, exported.text
    return [r for r in exported.json()["records"] if r["kind"].startswith("model.")]


async def test_an_incident_commander_registers_but_cannot_change_a_model(api: Api) -> None:
    async with api.client() as client:
        first = await client.post(
            "/v1/models", headers=api.headers("ic"), json=_manifest_body(), params=UNDEPLOYED
        )
        assert first.status_code == 201, first.text
        again = await client.post(
            "/v1/models", headers=api.headers("ic"), json=_manifest_body(), params=UNDEPLOYED
        )
        assert again.status_code == 201 and again.json()["revision"] == 1  # nothing changed
        moved = await client.post(
            "/v1/models",
            headers=api.headers("ic"),
            params={"reason": "moving to prod", **UNDEPLOYED},
            json=_manifest_body("prod-gw"),
        )
        assert moved.status_code == 403, moved.text
        assert "router.target" in moved.json()["detail"]
        assert "admin" in moved.json()["detail"]
        stored = await client.get("/v1/models/credit-targets", headers=api.headers("ic"))
        assert stored.json()["router"]["target"] == GATEWAY
    [registered] = await _trail(api, "credit-targets")
    assert registered["kind"] == "model.registered" and registered["actor"] == "ic"
    assert registered["detail"]["router_target"] == GATEWAY


async def test_an_admin_change_needs_a_reason_and_is_recorded_with_old_and_new(api: Api) -> None:
    async with api.client() as client:
        first = await client.post(
            "/v1/models", headers=api.headers("ic"), json=_manifest_body(), params=UNDEPLOYED
        )
        assert first.status_code == 201, first.text
        no_reason = await client.post(
            "/v1/models",
            headers=api.headers("admin"),
            json=_manifest_body("prod-gw"),
            params=UNDEPLOYED,
        )
        assert no_reason.status_code == 422, no_reason.text
        assert no_reason.json()["detail"][0]["loc"] == ["query", "reason"]
        changed = await client.post(
            "/v1/models",
            headers=api.headers("admin"),
            params={"reason": "CHG-1234: serve from the production gateway", **UNDEPLOYED},
            json={**_manifest_body("prod-gw"), "description": "now in prod"},
        )
        assert changed.status_code == 201, changed.text
        assert changed.json()["revision"] == 2
    registered, change = await _trail(api, "credit-targets")
    assert registered["kind"] == "model.registered"
    assert change["kind"] == "model.changed"
    assert change["actor"] == "admin"
    assert change["detail"]["reason"] == "CHG-1234: serve from the production gateway"
    assert change["detail"]["revision"] == 2
    assert change["detail"]["changes"] == {
        "router.target": {"old": GATEWAY, "new": "prod-gw"},
        "description": {"old": "", "new": "now in prod"},
    }


def test_the_test_fixtures_name_a_declared_target(router_service: RouterService) -> None:
    assert manifest_for(router_service).router == RouterRef(target=GATEWAY)


# ---- "contained" is the target's own answer ---------------------------------------------

PROBE = {
    "id": "fairlane-containment-probe",
    "features": {
        "income": 55_000.0,
        "credit_history_years": 6.0,
        "debt_ratio": 0.2,
        "zip_code": "10001",
    },
    "attributes": {"group": "A"},
}


def _probing(url: str, token: str, model: str) -> RoutingActivities:
    return RoutingActivities(
        TargetResolver(
            {GATEWAY: RoutingTarget(url=url, token=SecretStr(token), probes={model: PROBE})}
        )
    )


async def test_a_flip_to_the_fallback_is_verified_by_a_read_back_and_a_live_probe(
    router_service: RouterService,
) -> None:
    await router_service.reset()
    activities = _probing(router_service.url, router_service.token, router_service.model)
    env = ActivityEnvironment()
    current = await env.run(
        activities.read_route, ReadRouteInput(target=GATEWAY, model=router_service.model)
    )
    update = RouteUpdate(
        serving=Serving.FALLBACK,
        primary_version=current.primary_version,
        shadow_versions=[current.primary_version],
        generation=current.generation + 1,
        updated_by="fairlane:inc-verify",
    )
    flipped = await env.run(
        activities.set_route,
        SetRouteInput(target=GATEWAY, model=router_service.model, update=update),
    )
    verified = await env.run(
        activities.verify_route,
        VerifyRouteInput(
            target=GATEWAY,
            model=router_service.model,
            expected=flipped.spec(),
            generation=flipped.generation,
        ),
    )
    assert verified.target == GATEWAY
    assert verified.route.serving is Serving.FALLBACK
    assert verified.probe is not None and verified.probe.served_by is Serving.FALLBACK
    await router_service.reset()


@pytest.fixture
def lying_target() -> Iterator[str]:
    """A gateway that echoes every route write and reports the fallback, while a live
    request is still answered by the biased model."""
    app = FastAPI()

    @app.api_route("/v1/models/{model}/route", methods=["GET", "PUT"])
    async def route(model: str) -> dict[str, Any]:
        return {
            "model": model,
            "serving": "fallback",
            "primary_version": "v1",
            "shadow_versions": ["v1"],
            "generation": 7,
            "updated_by": "fairlane:inc",
            "updated_at": datetime.now(UTC).isoformat(),
        }

    @app.post("/v1/models/{model}/decisions")
    async def decide(model: str) -> dict[str, Any]:
        return {
            "decision_id": "d-1",
            "id": "fairlane-containment-probe",
            "model": model,
            "served_by": "primary",
            "version": "v1",
            "decision": True,
            "amount": 1000.0,
        }

    with serve(app, free_port()) as url:
        yield url


async def test_containment_is_not_claimed_when_the_target_still_serves_the_model(
    lying_target: str,
) -> None:
    activities = _probing(lying_target, "t", "credit")
    expected = RouteSpec(serving=Serving.FALLBACK, primary_version="v1", shadow_versions=["v1"])
    with pytest.raises(ApplicationError) as unverified:
        await ActivityEnvironment().run(
            activities.verify_route,
            VerifyRouteInput(target=GATEWAY, model="credit", expected=expected, generation=7),
        )
    assert unverified.value.type == "ContainmentUnverified" and unverified.value.non_retryable
    assert "from primary (v1), not fallback" in unverified.value.message
    with pytest.raises(ApplicationError) as stale:  # a read-back older than the write
        await ActivityEnvironment().run(
            activities.verify_route,
            VerifyRouteInput(target=GATEWAY, model="credit", expected=expected, generation=8),
        )
    assert stale.value.type == "ContainmentUnverified"
    assert "generation 7" in stale.value.message


CONTAIN_PLAYBOOK = """
name: contain-verify
version: "1"
steps:
  - name: contain
    kind: route
    serving: fallback
    retry: {maximum_attempts: 2, initial_interval: 100ms, maximum_interval: 200ms}
    timeouts: {start_to_close: 2s, schedule_to_close: 30s}
    keep_trying_every: 1s
    on_failure: {action: escalate}
"""


async def test_an_incident_does_not_report_contained_while_the_target_serves_the_model(
    dev_env: WorkflowEnvironment,
    router_service: RouterService,
    lying_target: str,
    trail: AuditTrail,
) -> None:
    """The gateway says "fallback" when asked for its route, but the operator's probe is
    answered by the model: the incident keeps trying and escalates, never "contained"."""
    queue = f"verify-{uuid.uuid4().hex[:8]}"
    model = router_service.model
    settings = Settings(
        task_queue=queue,
        router_token=SecretStr("t"),
        routing_targets={
            GATEWAY: RoutingTarget(url=lying_target, token=SecretStr("t"), probes={model: PROBE})
        },
    )
    incident = incident_input(router_service, load_playbook_text(CONTAIN_PLAYBOOK))
    async with build_worker(dev_env.client, settings, trail):
        handle = await start_incident(dev_env.client, incident, queue)
        try:
            for _ in range(300):
                state = await state_of(handle)
                if state.containment is not None and state.containment.failing_since:
                    break
                await asyncio.sleep(0.1)
            assert state.containment is not None and state.containment.failing_since
            assert not state.contained
            assert "ContainmentUnverified" in (state.containment.last_error or "")
            assert "from primary (v1), not fallback" in (state.containment.last_error or "")
        finally:
            await handle.terminate("test over")


def test_a_registration_decided_on_a_stale_revision_is_refused(trail: AuditTrail) -> None:
    """Who may write (first registration or change) is decided on the revision read; a
    write that finds another revision by then is refused rather than slipping through."""
    from registry.service import ModelRegistry, RevisionConflict

    registry = ModelRegistry(trail.engine)
    manifest = ModelManifest.model_validate(_manifest_body())
    assert registry.register(manifest, "ic", expected_revision=0) == 1
    with pytest.raises(RevisionConflict, match="revision 1, not 0"):
        registry.register(manifest, "another-ic", expected_revision=0)
    assert registry.register(manifest, "admin", expected_revision=1) == 2

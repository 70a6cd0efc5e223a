"""The reference router over HTTP: auth, deployments, the routing contract, decisions, shadows.

Outcomes and window summaries are in test_router_outcomes.py, on the fixtures here.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import structlog
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from analysis.scoring import Scorer, load_scorer
from config.settings import Settings
from contracts.routing import Route, RouteUpdate, Serving
from demo.credit_model import (
    DemoModelFiles,
    prepare_demo_model,
    save_model,
    train_credit_model,
)
from demo.dataset import generate_applicants
from router.app import RouterConfigError, create_app
from router.client import ROUTER_CONNECTIONS, RouterClient, RouterError, StaleRouteError
from router.dispatch import live_side
from router.schemas import DecisionRequest
from router.serving import LoadedVersions
from store.artifacts import ArtifactStore
from tests.fixtures.gateway import RULES_VERSION, credit_request, deploy_credit, rules_decision

TOKEN = "router-test-token-7f3a"
MODEL = "credit-limit"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ArtifactStore:
    return ArtifactStore(tmp_path_factory.mktemp("models") / "artifacts")


@pytest.fixture(autouse=True)
def _artifacts_dir(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every router in this module opens artifacts from the module's artifacts directory."""
    monkeypatch.setenv("FAIRLANE_ARTIFACTS_DIR", str(store.root))


@pytest.fixture(scope="module")
def artifacts(store: ArtifactStore) -> dict[str, str]:
    """v1 is the demo model; v2 a second version trained on other applicants (the candidate)."""
    files: DemoModelFiles = prepare_demo_model(
        store.root.parent, training_rows=4_000, validation_rows=500, artifacts=store
    )
    v2, _ = save_model(
        store, train_credit_model(generate_applicants(3_000, 99), "v2"), MODEL, "v2.skops"
    )
    return {"v1": files.artifact_name, "v2": v2}


@pytest.fixture(scope="module")
def models(store: ArtifactStore, artifacts: dict[str, str]) -> dict[str, Scorer]:
    return {
        version: load_scorer(store, name, store.digest(name)) for version, name in artifacts.items()
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, router_token=SecretStr(TOKEN))


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


def client_for(app: FastAPI, token: str = TOKEN) -> RouterClient:
    return RouterClient("http://router", token, transport=httpx.ASGITransport(app=app))


@pytest.fixture
async def router(app: FastAPI) -> AsyncIterator[RouterClient]:
    async with client_for(app) as client:
        yield client


@pytest.fixture
async def deployed(router: RouterClient, artifacts: dict[str, str]) -> RouterClient:
    await deploy_credit(router, MODEL, artifacts, "v1")
    return router


def applicant(applicant_id: str, **changes: Any) -> DecisionRequest:
    base: dict[str, Any] = {
        "applicant_id": applicant_id,
        "income": 52_000.0,
        "credit_history_years": 6.0,
        "debt_ratio": 0.2,
        "zip_code": "Z16",
        "group": "B",
    }
    return credit_request(**(base | changes))


def update(generation: int, **spec: Any) -> RouteUpdate:
    return RouteUpdate(
        generation=generation,
        updated_by="test",
        reason="testing",
        **({"primary_version": "v1"} | spec),
    )


def model_answer(model: Scorer, who: DecisionRequest) -> tuple[bool | None, float | None]:
    return model.score(pd.DataFrame([who.features])).row(0)


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a real loopback socket for the duration of the block."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# --- start-up and authentication -------------------------------------------------------


@pytest.mark.parametrize("token", [None, SecretStr(""), SecretStr("   ")])
def test_refuses_to_start_without_a_token(tmp_path: Path, token: SecretStr | None) -> None:
    with pytest.raises(RouterConfigError, match="FAIRLANE_ROUTER_TOKEN"):
        create_app(Settings(data_dir=tmp_path, router_token=token))


async def test_healthz_needs_no_token(app: FastAPI) -> None:
    async with client_for(app, token="wrong") as client:
        assert await client.health()


PROTECTED = [
    ("PUT", f"/v1/models/{MODEL}/deployment", {"versions": {"v1": "x"}, "primary_version": "v1"}),
    ("GET", f"/v1/models/{MODEL}/route", None),
    ("PUT", f"/v1/models/{MODEL}/route", {"primary_version": "v1", "generation": 1}),
    ("POST", f"/v1/models/{MODEL}/decisions", {"id": "a"}),
    ("POST", f"/v1/models/{MODEL}/decisions:batch", {"records": []}),
    ("GET", f"/v1/models/{MODEL}/decisions", None),
    ("GET", f"/v1/models/{MODEL}/deployment", None),
    ("POST", f"/v1/models/{MODEL}/outcomes", {"outcomes": [{"decision_id": 1, "good": True}]}),
    (
        "GET",
        f"/v1/models/{MODEL}/decisions/summary"
        "?since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00Z",
        None,
    ),
]


def test_every_model_route_of_the_app_is_in_the_protected_list(app: FastAPI) -> None:
    """A new route must join PROTECTED, so the test above proves it needs the token."""
    listed = {
        (method, path.split("?")[0].replace(MODEL, "{model}")) for method, path, _ in PROTECTED
    }
    served = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path != "/healthz"
        for method in operations
    }
    assert served == listed


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
async def test_every_route_but_healthz_needs_the_token(
    app: FastAPI, method: str, path: str, body: Any, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://r"
    ) as raw:
        response = await raw.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_the_token_never_reaches_the_logs(
    router: RouterClient, artifacts: dict[str, str]
) -> None:
    with structlog.testing.capture_logs() as logs:
        await deploy_credit(router, MODEL, artifacts, "v1")
        await router.set_route(MODEL, update(1, serving=Serving.FALLBACK))
        await router.decide(MODEL, applicant("a-1"))
    assert logs
    assert TOKEN not in repr(logs)


# --- deployments ---------------------------------------------------------------------------


async def test_deploy_creates_the_initial_route(
    router: RouterClient, artifacts: dict[str, str]
) -> None:
    deployment = await deploy_credit(router, MODEL, artifacts, "v1")

    assert deployment.versions == artifacts
    assert deployment.route.generation == 0
    assert deployment.route.serving is Serving.PRIMARY
    assert deployment.route.primary_version == "v1"
    assert await router.get_route(MODEL) == deployment.route


async def test_redeploy_keeps_the_current_route(
    deployed: RouterClient, artifacts: dict[str, str]
) -> None:
    flipped = await deployed.set_route(MODEL, update(1, serving=Serving.FALLBACK))
    again = await deploy_credit(deployed, MODEL, artifacts, "v1")
    assert again.route == flipped


@pytest.mark.parametrize(
    ("versions", "primary", "reason"),
    [
        ({"v1": "credit-limit/nonexistent.skops"}, "v1", "does not exist"),
        ({"v2": "V1_ARTIFACT"}, "v2", "holds version 'v1'"),
        ({"v1": "V1_ARTIFACT"}, "v3", "primary_version 'v3' is not in versions"),
        ({RULES_VERSION: "V1_ARTIFACT"}, RULES_VERSION, "fallback rules' version"),
    ],
)
async def test_deploy_refuses_what_it_cannot_load(
    router: RouterClient,
    artifacts: dict[str, str],
    versions: dict[str, str],
    primary: str,
    reason: str,
) -> None:
    resolved = {v: artifacts["v1"] if p == "V1_ARTIFACT" else p for v, p in versions.items()}
    with pytest.raises(RouterError) as refused:
        await deploy_credit(router, MODEL, resolved, primary)
    assert refused.value.status_code == 422
    assert reason in refused.value.reason
    with pytest.raises(RouterError) as unknown:
        await router.get_route(MODEL)
    assert unknown.value.status_code == 404


async def test_deploy_refuses_a_corrupt_artifact(
    router: RouterClient, store: ArtifactStore
) -> None:
    (store.root / "corrupt.skops").write_bytes(b"PK\x03\x04not really a zip")
    with pytest.raises(RouterError, match="not a skops file") as refused:
        await deploy_credit(router, MODEL, {"v1": "corrupt.skops"}, "v1")
    assert refused.value.status_code == 422


async def test_a_deployment_cannot_strand_the_route(
    deployed: RouterClient, artifacts: dict[str, str]
) -> None:
    await deployed.set_route(MODEL, update(1, candidate_version="v2", canary_percent=5))
    with pytest.raises(RouterError, match="still uses") as refused:
        await deploy_credit(deployed, MODEL, {"v1": artifacts["v1"]}, "v1")
    assert refused.value.status_code == 409


# --- the routing contract -------------------------------------------------------------------


async def test_unknown_model_is_404_everywhere(router: RouterClient) -> None:
    calls = [
        router.get_route("nope"),
        router.set_route("nope", update(1)),
        router.decide("nope", applicant("a")),
        router.decisions("nope"),
        router.get_deployment("nope"),
        router.record_outcomes("nope", {"1": True}),
        router.window("nope", "v2", datetime.now(UTC) - timedelta(days=1), datetime.now(UTC)),
    ]
    for call in calls:
        with pytest.raises(RouterError, match="'nope'") as missing:
            await call
        assert missing.value.status_code == 404


async def test_set_route_applies_a_newer_generation(deployed: RouterClient) -> None:
    route = await deployed.set_route(
        MODEL, update(1, serving=Serving.FALLBACK, shadow_versions=["v1"])
    )
    assert route.generation == 1
    assert route.serving is Serving.FALLBACK
    assert route.shadow_versions == ["v1"]
    assert route.updated_by == "test"
    assert await deployed.get_route(MODEL) == route


async def test_a_retried_identical_update_is_a_no_op(deployed: RouterClient) -> None:
    flip = update(1, serving=Serving.FALLBACK, shadow_versions=["v1"])
    first = await deployed.set_route(MODEL, flip)
    before = await deployed.decide(MODEL, applicant("retry-1"))

    retried = await deployed.set_route(MODEL, flip)

    assert retried == first  # same generation, same updated_at: nothing was rewritten
    after = await deployed.decide(MODEL, applicant("retry-1"))
    assert (after.served_by, after.version, after.decision, after.amount) == (
        before.served_by,
        before.version,
        before.decision,
        before.amount,
    )


async def test_a_not_newer_different_update_is_stale(deployed: RouterClient) -> None:
    await deployed.set_route(MODEL, update(2, serving=Serving.FALLBACK))

    with pytest.raises(StaleRouteError) as same_generation:
        await deployed.set_route(MODEL, update(2, serving=Serving.PRIMARY))
    assert "already set with a different routing" in same_generation.value.reason
    assert same_generation.value.current is not None
    assert same_generation.value.current.generation == 2

    with pytest.raises(StaleRouteError, match="not newer") as older:
        await deployed.set_route(MODEL, update(1, serving=Serving.FALLBACK))
    assert older.value.status_code == 409

    route = await deployed.get_route(MODEL)
    assert (route.generation, route.serving) == (2, Serving.FALLBACK)


async def test_concurrent_writers_of_one_generation_cannot_both_win(
    deployed: RouterClient,
) -> None:
    contenders = [
        update(1, serving=Serving.FALLBACK),
        update(1, serving=Serving.PRIMARY, shadow_versions=["v2"]),
        update(1, candidate_version="v2", canary_percent=5),
        update(1, serving=Serving.CANDIDATE, candidate_version="v2"),
    ]
    results = await asyncio.gather(
        *(deployed.set_route(MODEL, change) for change in contenders), return_exceptions=True
    )

    winners = [r for r in results if isinstance(r, Route)]
    assert len(winners) == 1
    assert all(isinstance(r, StaleRouteError) for r in results if not isinstance(r, Route))
    assert await deployed.get_route(MODEL) == winners[0]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"primary_version": "v9"}, "primary_version 'v9' is not deployed"),
        ({"candidate_version": "v9", "canary_percent": 5}, "candidate_version 'v9'"),
        ({"shadow_versions": ["v1", "v9"]}, "shadow_versions 'v9'"),
        ({"serving": Serving.CANDIDATE}, "needs a candidate_version"),
        ({"canary_percent": 10}, "needs a candidate_version"),
    ],
)
async def test_a_route_the_router_cannot_serve_is_422(
    deployed: RouterClient, spec: dict[str, Any], reason: str
) -> None:
    with pytest.raises(RouterError) as refused:
        await deployed.set_route(MODEL, update(1, **spec))
    assert refused.value.status_code == 422
    assert reason in refused.value.reason
    assert (await deployed.get_route(MODEL)).generation == 0


# --- decisions ------------------------------------------------------------------------------


async def test_primary_decides_and_group_is_only_recorded(
    deployed: RouterClient, models: dict[str, Scorer]
) -> None:
    as_b = await deployed.decide(MODEL, applicant("g-1", group="B"))
    as_a = await deployed.decide(MODEL, applicant("g-2", group="A"))

    assert (as_b.served_by, as_b.version) == (Serving.PRIMARY, "v1")
    assert (as_b.decision, as_b.amount) == model_answer(models["v1"], applicant("g-1"))
    assert (as_a.decision, as_a.amount) == (as_b.decision, as_b.amount)
    logged = await deployed.decisions(MODEL)
    assert [(r.decision_id, r.group) for r in logged] == [
        (as_b.decision_id, "B"),
        (as_a.decision_id, "A"),
    ]
    assert logged[0].stratum == "50-60k|5-10y"
    assert logged[0].rules_version is None


async def test_fallback_rules_decide_and_the_model_scores_only_in_shadow(
    deployed: RouterClient, models: dict[str, Scorer]
) -> None:
    await deployed.set_route(MODEL, update(1, serving=Serving.FALLBACK, shadow_versions=["v1"]))
    people = [
        applicant("f-1"),
        applicant("f-2", zip_code="Z01", group="A"),
        applicant("f-3", debt_ratio=0.6),
    ]

    answers = [await deployed.decide(MODEL, who) for who in people]

    for who, answer in zip(people, answers, strict=True):
        assert (answer.served_by, answer.version) == (Serving.FALLBACK, RULES_VERSION)
        assert (answer.decision, answer.amount) == rules_decision(
            who.features["income"], who.features["credit_history_years"], who.features["debt_ratio"]
        )
    # The same income and history get the same answer whatever the zip code.
    assert (answers[0].decision, answers[0].amount) == (
        answers[1].decision,
        answers[1].amount,
    )

    live = await deployed.decisions(MODEL)
    assert [r.decision_id for r in live] == [a.decision_id for a in answers]
    assert not any(r.shadow for r in live)

    everything = await deployed.decisions(MODEL, include_shadow=True)
    shadows = [r for r in everything if r.shadow]
    assert len(shadows) == len(people)
    for who, answer, shadow in zip(people, answers, shadows, strict=True):
        assert shadow.version == "v1"
        assert shadow.served_by is Serving.FALLBACK
        assert shadow.shadow_of == answer.decision_id
        assert shadow.group == who.attributes["group"]
        assert (shadow.decision, shadow.amount) == model_answer(models["v1"], who)


async def test_a_failing_shadow_never_costs_the_live_answer(
    deployed: RouterClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await deployed.set_route(MODEL, update(1, serving=Serving.FALLBACK, shadow_versions=["v1"]))
    real_get = LoadedVersions.get

    def broken_v1(
        self: LoadedVersions, model: str, version: str, artifact: str, pin: Callable[[], str | None]
    ) -> Scorer:
        if version == "v1":
            raise RuntimeError("shadow model crashed")
        return real_get(self, model, version, artifact, pin)

    monkeypatch.setattr(LoadedVersions, "get", broken_v1)
    answer = await deployed.decide(MODEL, applicant("s-1"))

    assert answer.served_by is Serving.FALLBACK
    assert [r.shadow for r in await deployed.decisions(MODEL, include_shadow=True)] == [False]


async def test_candidate_mode_serves_the_candidate(
    deployed: RouterClient, models: dict[str, Scorer]
) -> None:
    await deployed.set_route(
        MODEL, update(1, serving=Serving.CANDIDATE, candidate_version="v2", shadow_versions=["v1"])
    )
    who = applicant("c-1")
    answer = await deployed.decide(MODEL, who)

    assert (answer.served_by, answer.version) == (Serving.CANDIDATE, "v2")
    assert (answer.decision, answer.amount) == model_answer(models["v2"], who)
    logged = await deployed.decisions(MODEL, include_shadow=True)
    assert [(r.version, r.shadow) for r in logged] == [("v2", False), ("v1", True)]


def test_canary_share_of_2000_applicants_matches_and_ramps_monotonically() -> None:
    ids = [f"canary-{i}" for i in range(2_000)]

    def on_candidate(percent: float) -> set[str]:
        route = update(1, candidate_version="v2", canary_percent=percent)
        return {i for i in ids if live_side(route, MODEL, i)[0] is Serving.CANDIDATE}

    ramp = {percent: on_candidate(percent) for percent in (1, 5, 25, 50, 100)}
    for percent, chosen in ramp.items():
        # Binomial standard deviation at 2,000 draws is at most 1.1 points; allow 3.
        assert len(chosen) / len(ids) * 100 == pytest.approx(percent, abs=3.3)
    assert ramp[1] <= ramp[5] <= ramp[25] <= ramp[50] <= ramp[100] == set(ids)
    assert on_candidate(0) == set()


def test_the_canary_splits_the_fallback_as_it_splits_the_primary() -> None:
    """Ramped against the fallback, the same applicants reach the candidate as against primary."""
    ids = [f"canary-{i}" for i in range(2_000)]

    def sides(serving: Serving, percent: float) -> dict[str, tuple[Serving, str | None]]:
        route = update(1, serving=serving, candidate_version="v2", canary_percent=percent)
        return {i: live_side(route, MODEL, i) for i in ids}

    previous: set[str] = set()
    for percent in (0, 1, 5, 25, 50, 100):
        over_fallback = sides(Serving.FALLBACK, percent)
        chosen = {i for i, side in over_fallback.items() if side == (Serving.CANDIDATE, "v2")}
        rest = {side for i, side in over_fallback.items() if i not in chosen}
        assert rest <= {(Serving.FALLBACK, None)}  # the rules answer, stamped with their version
        assert len(chosen) / len(ids) * 100 == pytest.approx(percent, abs=3.3)
        assert previous <= chosen
        over_primary = sides(Serving.PRIMARY, percent)
        assert chosen == {i for i, side in over_primary.items() if side[0] is Serving.CANDIDATE}
        previous = chosen
    assert previous == set(ids)


async def test_canary_over_the_fallback_over_http(
    deployed: RouterClient, models: dict[str, Scorer]
) -> None:
    """The incident ramp: rules answer most, the candidate some, the contained v1 shadows all."""
    route = await deployed.set_route(
        MODEL,
        update(
            1,
            serving=Serving.FALLBACK,
            shadow_versions=["v1"],
            candidate_version="v2",
            canary_percent=30,
        ),
    )
    people = [
        applicant(f"cf-{i}", income=20_000.0 + 1_500.0 * i, credit_history_years=i % 12)
        for i in range(120)
    ]

    first = {who.id: await deployed.decide(MODEL, who) for who in people}
    second = {who.id: await deployed.decide(MODEL, who) for who in people}

    for who in people:
        answer = first[who.id]
        side, version = live_side(route, MODEL, who.id)
        assert (answer.served_by, answer.version) == (side, version or RULES_VERSION)
        again = second[who.id]
        assert (again.served_by, again.version, again.decision, again.amount) == (
            answer.served_by,
            answer.version,
            answer.decision,
            answer.amount,
        )
        if answer.served_by is Serving.CANDIDATE:
            assert answer.version == "v2"
            assert (answer.decision, answer.amount) == model_answer(models["v2"], who)
        else:
            assert (answer.served_by, answer.version) == (Serving.FALLBACK, RULES_VERSION)
            assert (answer.decision, answer.amount) == rules_decision(
                who.features["income"],
                who.features["credit_history_years"],
                who.features["debt_ratio"],
            )
    share = sum(d.served_by is Serving.CANDIDATE for d in first.values()) / len(people)
    assert 0.15 < share < 0.45

    logged = await deployed.decisions(MODEL, include_shadow=True, limit=10_000)
    live = {r.decision_id: r for r in logged if not r.shadow}
    shadows = [r for r in logged if r.shadow]
    assert len(live) == 2 * len(people)
    # The contained model keeps scoring every application in shadow, whoever answered it.
    assert sorted(r.shadow_of for r in shadows if r.shadow_of is not None) == sorted(live)
    for shadow in shadows:
        assert shadow.shadow_of is not None
        assert shadow.version == "v1"
        assert shadow.served_by is live[shadow.shadow_of].served_by


async def test_canary_over_http_is_sticky_per_applicant(deployed: RouterClient) -> None:
    route = await deployed.set_route(MODEL, update(1, candidate_version="v2", canary_percent=30))
    ids = [f"sticky-{i}" for i in range(120)]

    first = {i: await deployed.decide(MODEL, applicant(i)) for i in ids}
    second = {i: await deployed.decide(MODEL, applicant(i)) for i in ids}

    for i in ids:
        expected_side, expected_version = live_side(route, MODEL, i)
        assert (first[i].served_by, first[i].version) == (expected_side, expected_version)
        assert (second[i].served_by, second[i].version) == (expected_side, expected_version)
    share = sum(d.served_by is Serving.CANDIDATE for d in first.values()) / len(ids)
    assert 0.15 < share < 0.45


async def test_decisions_can_be_filtered(deployed: RouterClient) -> None:
    start = datetime.now(UTC)
    q1 = (await deployed.decide(MODEL, applicant("q-1"))).decision_id
    await deployed.set_route(MODEL, update(1, serving=Serving.FALLBACK, shadow_versions=["v1"]))
    q2 = (await deployed.decide(MODEL, applicant("q-2"))).decision_id
    middle = datetime.now(UTC)
    q3 = (await deployed.decide(MODEL, applicant("q-3"))).decision_id

    fallback = await deployed.decisions(MODEL, served_by=Serving.FALLBACK)
    assert [r.decision_id for r in fallback] == [q2, q3]
    assert {r.rules_version for r in fallback} == {RULES_VERSION}
    assert [r.decision_id for r in await deployed.decisions(MODEL, since=middle)] == [q3]
    assert [r.decision_id for r in await deployed.decisions(MODEL, until=middle)] == [q1, q2]
    assert await deployed.decisions(MODEL, until=start - timedelta(seconds=1)) == []
    assert len(await deployed.decisions(MODEL, include_shadow=True)) == 5
    assert len(await deployed.decisions(MODEL, include_shadow=True, limit=2)) == 2


async def test_decisions_query_refuses_naive_times(app: FastAPI, deployed: RouterClient) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://r"
    ) as raw:
        response = await raw.get(
            f"/v1/models/{MODEL}/decisions",
            params={"since": "2026-01-01T00:00:00"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert response.status_code == 422
    assert "timezone" in response.text


@pytest.mark.parametrize(
    ("features", "attributes", "named"),
    [
        ({"debt_ratio": "high"}, {}, "body.features.debt_ratio: must be a finite number"),
        ({"zip_code": 3.5}, {}, "body.features.zip_code: must be a category"),
        ({"tenure": 4.0}, {}, "body.features.tenure: not a feature of the model"),
        ({"income": None}, {}, "body.features.income: missing"),
        ({}, {"group": "C"}, "body.attributes.group: unknown group 'C'"),
        ({}, {"group": None}, "body.attributes.group: missing"),
        ({}, {"race": "x"}, "body.attributes.race: not a protected attribute"),
    ],
)
async def test_a_request_that_breaks_the_contract_is_422_naming_the_field(
    deployed: RouterClient, features: dict[str, Any], attributes: dict[str, Any], named: str
) -> None:
    good = applicant("bad")
    body = good.model_copy(
        update={
            "features": {k: v for k, v in (good.features | features).items() if v is not None},
            "attributes": {
                k: v for k, v in (good.attributes | attributes).items() if v is not None
            },
        }
    )
    with pytest.raises(RouterError) as refused:
        await deployed.decide(MODEL, body)
    assert refused.value.status_code == 422
    assert named in refused.value.reason
    assert await deployed.decisions(MODEL) == []  # nothing was logged


async def test_a_batch_is_scored_as_single_requests_are(
    deployed: RouterClient, models: dict[str, Scorer]
) -> None:
    await deployed.set_route(
        MODEL, update(1, candidate_version="v2", canary_percent=50, shadow_versions=["v1"])
    )
    people = [applicant(f"b-{i}", income=30_000.0 + 1_000 * i) for i in range(40)]
    batch = await deployed.decide_batch(MODEL, people)
    singles = [await deployed.decide(MODEL, who) for who in people]
    assert [(d.id, d.served_by, d.version, d.decision, d.amount) for d in batch] == [
        (d.id, d.served_by, d.version, d.decision, d.amount) for d in singles
    ]
    assert {d.served_by for d in batch} == {Serving.PRIMARY, Serving.CANDIDATE}
    logged = await deployed.decisions(MODEL, include_shadow=True, limit=1_000)
    assert sum(r.shadow for r in logged) == 2 * sum(d.version == "v2" for d in batch)


async def test_a_batch_with_one_bad_record_is_refused_whole(deployed: RouterClient) -> None:
    people = [applicant("ok-1"), applicant("ok-2", group="Z"), applicant("ok-3")]
    with pytest.raises(RouterError) as refused:
        await deployed.decide_batch(MODEL, people)
    assert refused.value.status_code == 422
    assert "body.records.1.attributes.group: unknown group 'Z'" in refused.value.reason
    assert await deployed.decisions(MODEL) == []


# --- persistence and the real socket -------------------------------------------------------------


async def test_route_and_deployment_survive_a_restart(
    settings: Settings, artifacts: dict[str, str], models: dict[str, Scorer]
) -> None:
    async with client_for(create_app(settings)) as before:
        await deploy_credit(before, MODEL, artifacts, "v1")
        flipped = await before.set_route(
            MODEL, update(3, serving=Serving.FALLBACK, shadow_versions=["v2"])
        )

    async with client_for(create_app(settings)) as after:
        assert await after.get_route(MODEL) == flipped
        answer = await after.decide(MODEL, applicant("r-1"))
        assert answer.served_by is Serving.FALLBACK
        shadow = [r for r in await after.decisions(MODEL, include_shadow=True) if r.shadow]
        assert [(r.version, r.shadow_of) for r in shadow] == [("v2", answer.decision_id)]
        assert (shadow[0].decision, shadow[0].amount) == model_answer(
            models["v2"], applicant("r-1")
        )
        with pytest.raises(StaleRouteError):
            await after.set_route(MODEL, update(3, serving=Serving.PRIMARY))


async def test_the_contract_over_a_real_socket(app: FastAPI, artifacts: dict[str, str]) -> None:
    with served(app) as url:
        async with RouterClient(url, TOKEN) as router:
            assert await router.health()
            await deploy_credit(router, MODEL, artifacts, "v1")
            first = await router.decide(MODEL, applicant("net-1"))
            assert first.served_by is Serving.PRIMARY
            flip = update(1, serving=Serving.FALLBACK, shadow_versions=["v1"])
            route: Route = await router.set_route(MODEL, flip)
            assert await router.set_route(MODEL, flip) == route
            answer = await router.decide(MODEL, applicant("net-2"))
            assert (answer.served_by, answer.version) == (Serving.FALLBACK, RULES_VERSION)
            logged = await router.decisions(MODEL, include_shadow=True)
            assert [(r.decision_id, r.shadow) for r in logged] == [
                (first.decision_id, False),
                (answer.decision_id, False),
                (f"{answer.decision_id}/shadow/v1", True),
            ]
        async with RouterClient(url, "wrong") as intruder:
            with pytest.raises(RouterError) as refused:
                await intruder.get_route(MODEL)
            assert refused.value.status_code == 401


async def test_an_unreachable_router_is_a_router_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with RouterClient(f"http://127.0.0.1:{port}", TOKEN, timeout=2) as router:
        with pytest.raises(RouterError, match="unreachable") as failed:
            await router.get_route(MODEL)
        assert failed.value.status_code is None
        assert not await router.health()


async def test_an_in_memory_database_is_shared_across_threads(
    tmp_path: Path, artifacts: dict[str, str]
) -> None:
    app = create_app(
        Settings(data_dir=tmp_path, router_token=TOKEN, router_database_url="sqlite://")
    )
    async with client_for(app) as router:
        await deploy_credit(router, MODEL, artifacts, "v1")
        answer = await router.decide(MODEL, applicant("mem-1"))
        assert [r.decision_id for r in await router.decisions(MODEL)] == [answer.decision_id]
    assert not (tmp_path / "router.db").exists()


async def test_the_contract_holds_on_postgres(
    postgres_url: str, tmp_path: Path, artifacts: dict[str, str]
) -> None:
    settings = Settings(data_dir=tmp_path, router_token=TOKEN, router_database_url=postgres_url)
    model = f"pg-{uuid.uuid4().hex[:12]}"
    async with client_for(create_app(settings)) as router:
        await deploy_credit(router, model, artifacts, "v1")
        contenders = [
            update(1, serving=Serving.FALLBACK, shadow_versions=["v1"]),
            update(1, serving=Serving.CANDIDATE, candidate_version="v2"),
            update(1, candidate_version="v2", canary_percent=50),
        ]
        results = await asyncio.gather(
            *(router.set_route(model, change) for change in contenders), return_exceptions=True
        )
        winners = [r for r in results if isinstance(r, Route)]
        assert len(winners) == 1
        assert sum(isinstance(r, StaleRouteError) for r in results) == 2
        flip = update(2, serving=Serving.FALLBACK, shadow_versions=["v1"])
        route = await router.set_route(model, flip)
        assert await router.set_route(model, flip) == route
        answer = await router.decide(model, applicant("pg-1"))
        assert answer.served_by is Serving.FALLBACK

    async with client_for(create_app(settings)) as restarted:
        assert await restarted.get_route(model) == route
        logged = await restarted.decisions(model, include_shadow=True)
        assert [(r.version, r.shadow, r.shadow_of) for r in logged] == [
            (RULES_VERSION, False, None),
            ("v1", True, answer.decision_id),
        ]
        assert logged[0].at.tzinfo is not None


async def test_a_burst_of_requests_shares_a_bounded_pool_of_connections() -> None:
    """A storm's hundred containments reach one router over at most ROUTER_CONNECTIONS
    connections, each answered: the rest wait their turn rather than open (and then
    close) dozens more."""
    open_now = peak = accepted = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, peak, accepted
        open_now, accepted = open_now + 1, accepted + 1
        peak = max(peak, open_now)
        try:
            # Until the client hangs up (end of its connection, or a reset).
            with suppress(asyncio.IncompleteReadError, ConnectionError):
                while await reader.readuntil(b"\r\n\r\n"):
                    await asyncio.sleep(0.02)  # long enough for requests to overlap
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                    await writer.drain()
        finally:
            open_now -= 1
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, RouterClient(f"http://127.0.0.1:{port}", "token") as router:
        answers = await asyncio.gather(*(router.health() for _ in range(100)))
    assert all(answers)
    assert peak == accepted == ROUTER_CONNECTIONS

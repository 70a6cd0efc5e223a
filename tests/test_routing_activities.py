"""The route activities against the real router: a retried flip is a no-op, a stale one refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request, Response
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DefaultFailureConverter, DefaultPayloadConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.routing import RoutingActivities
from config.targets import GATEWAY, TargetResolver
from contracts.routing import RouteUpdate, Serving
from contracts.steps import ReadRouteInput, SetRouteInput
from tests.fixtures.services import RouterService, free_port, serve


def _where(router: RouterService) -> ReadRouteInput:
    return ReadRouteInput(target=GATEWAY, model=router.model)


def _activities(router: RouterService, token: str | None = None) -> RoutingActivities:
    """The activities with the test router declared as the `gateway` target."""
    return RoutingActivities(TargetResolver.single(router.url, token or router.token))


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


async def test_a_retried_flip_is_not_applied_twice(router_service: RouterService) -> None:
    activities = _activities(router_service)
    env = ActivityEnvironment()
    current = await env.run(activities.read_route, _where(router_service))
    flip = SetRouteInput(
        target=GATEWAY,
        model=router_service.model,
        update=RouteUpdate(
            serving=Serving.FALLBACK,
            primary_version=current.primary_version,
            shadow_versions=[current.primary_version],
            generation=current.generation + 1,
            updated_by="fairlane:inc-test",
        ),
    )
    first = await env.run(activities.set_route, flip)
    retried = await env.run(activities.set_route, flip)  # as Temporal would after a lost reply
    assert first.generation == retried.generation == current.generation + 1
    assert first.updated_at == retried.updated_at
    async with router_service.client() as router:
        assert (await router.get_route(router_service.model)).generation == first.generation


async def test_a_stale_flip_is_refused_and_not_retried(router_service: RouterService) -> None:
    activities = _activities(router_service)
    env = ActivityEnvironment()
    current = await env.run(activities.read_route, _where(router_service))
    stale = SetRouteInput(
        target=GATEWAY,
        model=router_service.model,
        update=RouteUpdate(
            serving=Serving.CANDIDATE,
            primary_version=current.primary_version,
            candidate_version=current.primary_version,
            generation=current.generation,
            updated_by="someone-else",
        ),
    )
    with pytest.raises(ApplicationError) as refused:
        await env.run(activities.set_route, stale)
    assert refused.value.type == "StaleRoute" and refused.value.non_retryable


async def test_unknown_model_and_bad_token_are_not_retried(router_service: RouterService) -> None:
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as unknown:
        await env.run(
            _activities(router_service).read_route,
            ReadRouteInput(target=GATEWAY, model="no-such-model"),
        )
    assert unknown.value.type == "RouterRefused404" and unknown.value.non_retryable
    with pytest.raises(ApplicationError) as unauthorized:
        await env.run(
            _activities(router_service, "wrong-token").read_route,
            ReadRouteInput(target=GATEWAY, model=router_service.model),
        )
    assert unauthorized.value.type == "RouterRefused401"


@pytest.fixture(scope="module")
def failing_router() -> Iterator[str]:
    """A router that answers 503 on every route, or hangs past the client's timeout."""
    app = FastAPI()

    @app.api_route("/v1/models/{model}/route", methods=["GET", "PUT"])
    async def route(model: str, request: Request) -> Response:
        if model == "slow":
            await asyncio.sleep(5)
        return Response("database is locked", status_code=503)

    with serve(app, free_port()) as url:
        yield url


def _flip(model: str) -> SetRouteInput:
    return SetRouteInput(
        target=GATEWAY,
        model=model,
        update=RouteUpdate(
            serving=Serving.FALLBACK, primary_version="v1", generation=2, updated_by="t"
        ),
    )


@pytest.mark.parametrize("operation", ["read", "set"])
@pytest.mark.parametrize(
    ("where", "model", "kind", "says"),
    [
        ("failing", "m", "RouterFailed503", "router failed: 503: database is locked"),
        ("failing", "slow", "RouterUnreachable", "router unreachable: ReadTimeout"),
        ("nowhere", "m", "RouterUnreachable", "router unreachable: ConnectError"),
    ],
)
async def test_a_failing_router_is_a_typed_retryable_failure_with_its_own_message(
    failing_router: str, operation: str, where: str, model: str, kind: str, says: str
) -> None:
    """The failure carries its own text to the step, the outcome and the trail: before,
    the activity raised the router error as its own cause and the SDK's failure
    converter recursed ("maximum recursion depth exceeded")."""
    url = failing_router if where == "failing" else f"http://127.0.0.1:{free_port()}"
    activities = RoutingActivities(TargetResolver.single(url, "token"), timeout_s=0.5)
    run = (
        ActivityEnvironment().run(
            activities.read_route, ReadRouteInput(target=GATEWAY, model=model)
        )
        if operation == "read"
        else ActivityEnvironment().run(activities.set_route, _flip(model))
    )
    with pytest.raises(ApplicationError) as failed:
        await run
    error = failed.value
    assert error.type == kind and not error.non_retryable
    assert error.message.startswith(says)
    assert error.__cause__ is not error
    # What Temporal's converter does with it: a failure, not a recursion error.
    failure = Failure()
    DefaultFailureConverter().to_failure(error, DefaultPayloadConverter(), failure)
    assert failure.message.startswith(says)
    assert failure.application_failure_info.type == kind


async def test_a_workers_routing_activities_share_one_connection_per_target() -> None:
    """A client made per activity built a new SSL context and a new connection every time:
    in an alert storm, half the containment worker's CPU, while models waited for their
    fallback. The worker keeps one client per declared target, and its connection."""
    callers: list[int] = []
    app = FastAPI()

    @app.get("/v1/models/{model}/route")
    async def route(model: str, request: Request) -> Response:
        assert request.client is not None
        callers.append(request.client.port)
        return Response("busy", status_code=503)

    with serve(app, free_port()) as url:
        activities = RoutingActivities(TargetResolver.single(url, "t"))
        env = ActivityEnvironment()
        for _ in range(5):
            with pytest.raises(ApplicationError):
                await env.run(activities.read_route, ReadRouteInput(target=GATEWAY, model="m"))
        await activities.aclose()
    assert len(callers) == 5
    assert len(set(callers)) == 1, f"{len(set(callers))} connections for 5 reads"

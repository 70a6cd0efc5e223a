"""The route activities against the real router: a retried flip is a no-op, a stale one refused."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.routing import RoutingActivities
from contracts.routing import RouteUpdate, Serving
from contracts.steps import ReadRouteInput, SetRouteInput
from tests.fixtures.services import RouterService


def _where(router: RouterService) -> ReadRouteInput:
    return ReadRouteInput(router_url=router.url, model=router.model)


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


async def test_a_retried_flip_is_not_applied_twice(router_service: RouterService) -> None:
    activities = RoutingActivities(router_service.token)
    env = ActivityEnvironment()
    current = await env.run(activities.read_route, _where(router_service))
    flip = SetRouteInput(
        router_url=router_service.url,
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
    activities = RoutingActivities(router_service.token)
    env = ActivityEnvironment()
    current = await env.run(activities.read_route, _where(router_service))
    stale = SetRouteInput(
        router_url=router_service.url,
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
            RoutingActivities(router_service.token).read_route,
            ReadRouteInput(router_url=router_service.url, model="no-such-model"),
        )
    assert unknown.value.type == "RouterRefused404" and unknown.value.non_retryable
    with pytest.raises(ApplicationError) as unauthorized:
        await env.run(
            RoutingActivities("wrong-token").read_route,
            ReadRouteInput(router_url=router_service.url, model=router_service.model),
        )
    assert unauthorized.value.type == "RouterRefused401"

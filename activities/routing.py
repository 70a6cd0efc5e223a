"""The `route` step's side effects: read and set a model's route at its router."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.canary import DEPLOY_VERSION, DeployVersionInput
from contracts.routing import Route
from contracts.steps import READ_ROUTE, SET_ROUTE, ReadRouteInput, SetRouteInput
from router.client import RouterClient, RouterError, StaleRouteError


class RoutingActivities:
    def __init__(self, router_token: str, timeout_s: float = 10.0) -> None:
        self._token = router_token
        self._timeout_s = timeout_s

    def _client(self, router_url: str) -> RouterClient:
        return RouterClient(router_url, self._token, timeout=self._timeout_s)

    @activity.defn(name=READ_ROUTE)
    async def read_route(self, request: ReadRouteInput) -> Route:
        async with self._client(request.router_url) as client:
            try:
                return await client.get_route(request.model)
            except RouterError as error:
                raise _typed(error) from error

    @activity.defn(name=SET_ROUTE)
    async def set_route(self, request: SetRouteInput) -> Route:
        """Idempotent: a retry resends the same generation, which the router treats as a no-op."""
        async with self._client(request.router_url) as client:
            try:
                return await client.set_route(request.model, request.update)
            except StaleRouteError as error:
                raise ApplicationError(
                    f"route of {request.model} changed under us: {error}",
                    type="StaleRoute",
                    non_retryable=True,
                ) from error
            except RouterError as error:
                raise _typed(error) from error

    @activity.defn(name=DEPLOY_VERSION)
    async def deploy_version(self, request: DeployVersionInput) -> str:
        """Add a version to the model's deployment at its router, keeping every other version."""
        async with self._client(request.router_url) as client:
            try:
                deployment = await client.get_deployment(request.model)
                if deployment.versions.get(request.version) == request.artifact:
                    return f"{request.version} already deployed"
                versions = {**deployment.versions, request.version: request.artifact}
                digests = {request.version: request.sha256} if request.sha256 else None
                await client.deploy(request.model, versions, deployment.primary_version, digests)
            except RouterError as error:
                raise _typed(error) from error
        return f"{request.version} deployed from {request.artifact}"


def _typed(error: RouterError) -> ApplicationError:
    """A typed failure that carries its own message into the step, the outcome and the trail.

    4xx means this request will never succeed as sent: stop retrying. A 5xx or an
    unreachable router may recover: Temporal retries. Either way the failure is a new
    ``ApplicationError`` (never ``error`` itself, which would become its own cause and
    send the SDK's failure converter into endless recursion).
    """
    code = error.status_code
    if code is not None and 400 <= code < 500:
        return ApplicationError(
            f"router refused: {error}", type=f"RouterRefused{code}", non_retryable=True
        )
    if code is None:
        return ApplicationError(str(error), type="RouterUnreachable")
    return ApplicationError(f"router failed: {error}", type=f"RouterFailed{code}")

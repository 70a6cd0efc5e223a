"""The `route` step's side effects: read and set a model's route at its router.

Requests name a routing target; the URL and the credential come from the targets the
operators declared on this worker (:class:`config.targets.TargetResolver`), so the
router token only ever goes to the URL it was declared with. A request naming an
undeclared target, or (recorded before targets existed) a URL that is no declared
target's, fails non-retryably before any connection is opened.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from config.targets import ResolvedTarget, TargetResolver, UnknownTarget
from contracts.canary import DEPLOY_VERSION, DeployVersionInput
from contracts.routing import Route
from contracts.steps import READ_ROUTE, SET_ROUTE, ReadRouteInput, SetRouteInput
from contracts.targets import RoutedTo
from router.client import RouterClient, RouterError, StaleRouteError


class RoutingActivities:
    def __init__(self, targets: TargetResolver, timeout_s: float = 10.0) -> None:
        self._targets = targets
        self._timeout_s = timeout_s

    def _client(self, request: RoutedTo) -> RouterClient:
        target = resolve_target(self._targets, request)
        return RouterClient(target.url, target.token or "", timeout=self._timeout_s)

    @activity.defn(name=READ_ROUTE)
    async def read_route(self, request: ReadRouteInput) -> Route:
        async with self._client(request) as client:
            try:
                return await client.get_route(request.model)
            except RouterError as error:
                raise _typed(error) from error

    @activity.defn(name=SET_ROUTE)
    async def set_route(self, request: SetRouteInput) -> Route:
        """Idempotent: a retry resends the same generation, which the router treats as a no-op."""
        async with self._client(request) as client:
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
        async with self._client(request) as client:
            try:
                deployment = await client.get_deployment(request.model)
                if deployment.versions.get(request.version) == request.artifact:
                    return f"{request.version} already deployed"
                versions = {**deployment.versions, request.version: request.artifact}
                await client.deploy(request.model, versions, deployment.primary_version)
            except RouterError as error:
                raise _typed(error) from error
        return f"{request.version} deployed from {request.artifact}"


def resolve_target(targets: TargetResolver, request: RoutedTo) -> ResolvedTarget:
    """The declared target ``request`` names, or a non-retryable ``UnknownRoutingTarget``."""
    try:
        return targets.resolve(request.target, request.router_url)
    except UnknownTarget as error:
        raise unknown_target(error) from None


def unknown_target(error: UnknownTarget) -> ApplicationError:
    """No retry can make an undeclared target declared: the operator has to act."""
    return ApplicationError(str(error), type="UnknownRoutingTarget", non_retryable=True)


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

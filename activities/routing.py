"""The `route` step's side effects: read and set a model's route at its router.

Requests name a routing target; the URL and the credential come from the targets the
operators declared on this worker (:class:`config.targets.TargetResolver`), so the
router token only ever goes to the URL it was declared with. A request naming an
undeclared target, or (recorded before targets existed) a URL that is no declared
target's, fails non-retryably before any connection is opened.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from config.targets import ResolvedTarget, TargetResolver, UnknownTarget
from contracts.canary import DEPLOY_VERSION, DeployVersionInput
from contracts.routing import Route
from contracts.steps import (
    READ_ROUTE,
    SET_ROUTE,
    VERIFY_ROUTE,
    ProbeAnswer,
    ReadRouteInput,
    RouteVerification,
    SetRouteInput,
    VerifyRouteInput,
)
from contracts.targets import RoutedTo
from router.client import RouterClient, RouterError, StaleRouteError
from router.schemas import DecisionRequest


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

    @activity.defn(name=VERIFY_ROUTE)
    async def verify_route(self, request: VerifyRouteInput) -> RouteVerification:
        """Ask the target itself, again, whether it serves what was set; then, if the
        operator declared a probe request for this model at this target, send it and see
        who answers.

        What it proves: the declared target (the URL operators declared, reached with
        its credential) holds the route at the generation written or later, as a
        separate read and not only in the write's echo; with a probe, that a live request
        to it right now is answered by the expected side (the fallback), not the model.
        What it cannot prove: that production traffic reaches this target at all (a
        second path to the model outside the gateway), or that every replica agrees.
        Fails non-retryably (``ContainmentUnverified``) when the answer disagrees, so the
        caller keeps trying instead of claiming containment.
        """
        target = resolve_target(self._targets, request)
        async with RouterClient(target.url, target.token or "", timeout=self._timeout_s) as client:
            try:
                route = await client.get_route(request.model)
                if route.generation < request.generation or not route.spec().same_routing(
                    request.expected
                ):
                    raise _unverified(
                        f"{target.id} reports {request.model} serving {route.serving.value} "
                        f"at generation {route.generation}, not {request.expected.serving.value} "
                        f"at {request.generation} or later"
                    )
                probe = None
                body = target.probes.get(request.model)
                if body is not None:
                    decision = await client.decide(request.model, _probe(target.id, body))
                    probe = ProbeAnswer(
                        served_by=decision.served_by,
                        version=decision.version,
                        decision_id=decision.decision_id,
                    )
                    if decision.served_by is not request.expected.serving:
                        raise _unverified(
                            f"{target.id} answered a live probe for {request.model} from "
                            f"{decision.served_by.value} ({decision.version}), not "
                            f"{request.expected.serving.value}"
                        )
            except RouterError as error:
                raise _typed(error) from error
        return RouteVerification(target=target.id, route=route, probe=probe)

    @activity.defn(name=DEPLOY_VERSION)
    async def deploy_version(self, request: DeployVersionInput) -> str:
        """Add a version to the model's deployment at its router, keeping every other version."""
        async with self._client(request) as client:
            try:
                deployment = await client.get_deployment(request.model)
                if deployment.versions.get(request.version) == request.artifact:
                    return f"{request.version} already deployed"
                versions = {**deployment.versions, request.version: request.artifact}
                digests = {request.version: request.sha256} if request.sha256 else None
                await client.deploy(
                    request.model,
                    versions,
                    deployment.primary_version,
                    digests,
                    manifest=deployment.manifest,
                    fallback=deployment.fallback,
                )
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


def _probe(target_id: str, body: dict[str, Any]) -> DecisionRequest:
    try:
        return DecisionRequest.model_validate(body)
    except ValidationError as error:
        raise ApplicationError(
            f"the probe declared for target {target_id!r} is not a valid request: "
            f"{error.error_count()} problem(s), e.g. {error.errors()[0]['loc']}",
            type="ProbeMisdeclared",
            non_retryable=True,
        ) from None


def _unverified(message: str) -> ApplicationError:
    return ApplicationError(message, type="ContainmentUnverified", non_retryable=True)


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

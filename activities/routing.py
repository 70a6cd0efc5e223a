"""The `route` step's side effects: read and set a model's route at its routing target.

Requests name a routing target; where it is (a gateway's URL and credential, or a
flagd flag file's path) comes from the targets the operators declared on this worker
(:class:`config.targets.TargetResolver`), so a router token only ever goes to the URL
it was declared with and a flag is only ever written to a file an operator named. A
request naming an undeclared target, or (recorded before targets existed) a URL that is
no declared target's, fails non-retryably before any connection is opened. Every kind
of target is driven through the same :class:`targets.protocol.RouteTarget` interface.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from config.targets import ResolvedFlagFile, ResolvedTarget, TargetResolver, UnknownTarget
from contracts.canary import DEPLOY_VERSION, DeployVersionInput
from contracts.steps import (
    READ_ROUTE,
    SET_ROUTE,
    VERIFY_ROUTE,
    ProbeAnswer,
    ReadRouteInput,
    RouteVerification,
    SetRouteInput,
    TargetRoute,
    VerifyRouteInput,
)
from contracts.targets import RoutedTo
from router.client import RouterError
from router.schemas import DecisionRequest
from targets.flag_file import FlagFileTarget
from targets.gateway import GatewayTarget, gateway_error
from targets.open import TargetClients
from targets.protocol import TargetError


class RoutingActivities:
    def __init__(self, targets: TargetResolver, timeout_s: float = 10.0) -> None:
        self._targets = targets
        self._clients = TargetClients(timeout_s)

    def _target(self, request: RoutedTo) -> GatewayTarget | FlagFileTarget:
        """The declared target ``request`` names, whatever its kind (gateway, flag file)."""
        return self._clients.open(resolve_route_target(self._targets, request))

    async def aclose(self) -> None:
        """Close the targets' shared clients (the worker is stopping)."""
        await self._clients.aclose()

    @activity.defn(name=READ_ROUTE)
    async def read_route(self, request: ReadRouteInput) -> TargetRoute:
        """The route as the target holds it now: what a later rollback restores."""
        async with self._target(request) as target:
            try:
                return await target.read_route(request.model)
            except TargetError as error:
                raise typed(error) from None

    @activity.defn(name=SET_ROUTE)
    async def set_route(self, request: SetRouteInput) -> TargetRoute:
        """Idempotent: a retry resends the same generation, which the target treats as a
        no-op; a route changed since it was read (``expected_revision``) is refused."""
        async with self._target(request) as target:
            try:
                return await target.set_route(
                    request.model, request.update, request.expected_revision
                )
            except TargetError as error:
                raise typed(error) from None

    @activity.defn(name=VERIFY_ROUTE)
    async def verify_route(self, request: VerifyRouteInput) -> RouteVerification:
        """Ask the target itself, again, whether it serves what was set; then, if the
        operator declared a probe request for this model at this (gateway) target, send
        it and see who answers.

        What it proves: the declared target (the URL or flag file operators declared)
        holds the route at the generation written or later, as a separate read and not
        only in the write's echo; with a probe, that a live request to it right now is
        answered by the expected side (the fallback), not the model. What it cannot
        prove: that production traffic reaches this target at all (a second path to the
        model outside it), or that every replica (every provider reading a flag file)
        has picked the change up. Fails non-retryably (``ContainmentUnverified``) when
        the answer disagrees, so the caller keeps trying instead of claiming containment.
        """
        async with self._target(request) as target:
            try:
                route = await target.read_route(request.model)
            except TargetError as error:
                raise typed(error) from None
            if route.generation < request.generation or not route.spec().same_routing(
                request.expected
            ):
                raise _unverified(
                    f"{target.target_id} reports {request.model} serving {route.serving.value} "
                    f"at generation {route.generation}, not {request.expected.serving.value} "
                    f"at {request.generation} or later"
                )
            probe = None
            if isinstance(target, GatewayTarget):
                probe = await _probe_answer(target, request)
        return RouteVerification(target=target.target_id, route=route, probe=probe)

    @activity.defn(name=DEPLOY_VERSION)
    async def deploy_version(self, request: DeployVersionInput) -> str:
        """Add a version to the model's deployment at its gateway, keeping every other
        version. A flag file only names versions: the service reading it serves them."""
        async with self._target(request) as target:
            if isinstance(target, FlagFileTarget):
                return (
                    f"{request.version}: target {target.target_id} is a flag file that names "
                    f"versions; the service reading {target.file.path} serves them itself, "
                    "so nothing was deployed there"
                )
            client = target.router
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
                raise typed(gateway_error(error)) from None
        return f"{request.version} deployed from {request.artifact}"


async def _probe_answer(target: GatewayTarget, request: VerifyRouteInput) -> ProbeAnswer | None:
    """Send the operator's declared probe for this model, if any, and see who answers."""
    body = target.probes.get(request.model)
    if body is None:
        return None
    try:
        decision = await target.router.decide(request.model, _probe(target.target_id, body))
    except RouterError as error:
        raise typed(gateway_error(error)) from None
    if decision.served_by is not request.expected.serving:
        raise _unverified(
            f"{target.target_id} answered a live probe for {request.model} from "
            f"{decision.served_by.value} ({decision.version}), not "
            f"{request.expected.serving.value}"
        )
    return ProbeAnswer(
        served_by=decision.served_by, version=decision.version, decision_id=decision.decision_id
    )


def resolve_target(targets: TargetResolver, request: RoutedTo) -> ResolvedTarget:
    """The declared HTTP target ``request`` names, or a non-retryable ``UnknownRoutingTarget``."""
    try:
        return targets.resolve(request.target, request.router_url)
    except UnknownTarget as error:
        raise unknown_target(error) from None


def resolve_route_target(
    targets: TargetResolver, request: RoutedTo
) -> ResolvedTarget | ResolvedFlagFile:
    """The declared target of any kind ``request`` names, or ``UnknownRoutingTarget``."""
    try:
        return targets.resolve_route_target(request.target, request.router_url)
    except UnknownTarget as error:
        raise unknown_target(error) from None


def unknown_target(error: UnknownTarget) -> ApplicationError:
    """No retry can make an undeclared target declared: the operator has to act."""
    return ApplicationError(str(error), type="UnknownRoutingTarget", non_retryable=True)


def typed(error: TargetError) -> ApplicationError:
    """A typed failure that carries its own message into the step, the outcome and the trail.

    Always a new ``ApplicationError`` (never ``error`` itself as its cause, which would
    send the SDK's failure converter into endless recursion on a self-referencing chain).
    """
    return ApplicationError(error.message, type=error.type, non_retryable=not error.retryable)


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

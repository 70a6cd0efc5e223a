"""An HTTP routing layer as a routing target: the route contract over ``RouterClient``.

Any gateway that implements docs/route-contract.md is one of these; Fairlane's own
reference gateway is the reference implementation. Generations are the compare-and-set
(a ``PUT`` whose generation is not newer is a 409), so there is no revision to carry.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from config.targets import ResolvedTarget
from contracts.routing import Route, RouteUpdate
from contracts.steps import TargetRoute
from router.client import RouterClient, RouterError, StaleRouteError
from targets.protocol import StaleRoute, TargetError


def gateway_error(error: RouterError) -> TargetError:
    """A typed failure that carries the gateway's own reason.

    4xx means this request will never succeed as sent: no retry. A 5xx or an
    unreachable gateway may recover: Temporal retries.
    """
    code = error.status_code
    if code is not None and 400 <= code < 500:
        return TargetError(f"router refused: {error}", f"RouterRefused{code}", retryable=False)
    if code is None:
        return TargetError(str(error), "RouterUnreachable", retryable=True)
    return TargetError(f"router failed: {error}", f"RouterFailed{code}", retryable=True)


def _at_target(route: Route) -> TargetRoute:
    return TargetRoute.model_validate(route.model_dump())


class GatewayTarget:
    """``async with GatewayTarget(resolved) as gateway: await gateway.read_route(model)``.

    With ``shared``, it drives a client someone else owns (:class:`targets.open.TargetClients`)
    and leaves it open on exit; otherwise it makes its own and closes it.
    """

    def __init__(
        self,
        resolved: ResolvedTarget,
        timeout_s: float = 10.0,
        *,
        shared: RouterClient | None = None,
    ) -> None:
        self._id = resolved.id
        self.probes = resolved.probes
        self._owns_client = shared is None
        self.router = shared or RouterClient(resolved.url, resolved.token or "", timeout=timeout_s)
        """The gateway's full client, for what only a gateway offers (probes, deployments)."""

    @property
    def target_id(self) -> str:
        return self._id

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._owns_client:
            await self.router.aclose()

    async def read_route(self, model: str) -> TargetRoute:
        try:
            return _at_target(await self.router.get_route(model))
        except RouterError as error:
            raise gateway_error(error) from error

    async def set_route(
        self, model: str, update: RouteUpdate, expected_revision: str | None = None
    ) -> TargetRoute:
        """The generation is the compare-and-set; ``expected_revision`` has nothing to add."""
        try:
            return _at_target(await self.router.set_route(model, update))
        except StaleRouteError as error:
            raise StaleRoute(
                f"route of {model} changed under us: {error}", error.current
            ) from error
        except RouterError as error:
            raise gateway_error(error) from error

"""Containment in one activity, for the path where every second counts: the watch's.

The incident's steps set routes through :meth:`workflows.ports.RouterPort.ensure`: read,
compare and set-next-generation as separate activities, each a round trip through the
task queue and a workflow task. In an alert storm those workflow tasks queue behind the
storm's own bookkeeping on a CPU-starved worker, and a model waited tens of seconds for
its fallback. The watch instead runs this as a *local* activity, inside the very
workflow task that received the alert: one task from alert to contained. It is the same
read-compare-set, made of the same three routing activities, so the generation check
keeps every retry idempotent: a retried attempt reads the route it already set, finds
it contained, and only verifies. The write names the revision read, so a flag-file
target refuses it if the flag changed in between (any kind of target works here: the
routing activities drive them all through one interface).
"""

from __future__ import annotations

from temporalio import activity

from activities.routing import RoutingActivities
from contracts.containment import CONTAIN_ROUTE, ContainedRoute, ContainRouteInput
from contracts.steps import ReadRouteInput, SetRouteInput, VerifyRouteInput
from workflows.routing import contained_route, next_update


class ContainmentActivities:
    def __init__(self, routing: RoutingActivities) -> None:
        self._routing = routing

    @activity.defn(name=CONTAIN_ROUTE)
    async def contain_route(self, request: ContainRouteInput) -> ContainedRoute:
        """The fallback serves and the model scores in shadow, confirmed by the target."""
        at = {"target": request.target, "router_url": request.router_url, "model": request.model}
        current = await self._routing.read_route(ReadRouteInput(**at))
        spec = contained_route(current)
        route = current
        if not current.spec().same_routing(spec):
            update = next_update(current, spec, request.updated_by, request.reason)
            route = await self._routing.set_route(
                SetRouteInput(**at, update=update, expected_revision=current.revision)
            )
        verified = await self._routing.verify_route(
            VerifyRouteInput(**at, expected=route.spec(), generation=route.generation)
        )
        return ContainedRoute(before=current, after=verified.route)

"""The incident's side effects on the outside world: its model's route, and notifications.

Shared by the incident workflow, the steps it delegates to (the canary ramp) and the
model's watch, so every route change is the same read, compare, set-next-generation
(:meth:`RouterPort.ensure`) and every message is built the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.channels import ChannelRef, NotificationEvent
    from contracts.containment import CONTAIN_ROUTE, ContainedRoute, ContainRouteInput
    from contracts.incident import IncidentInput, IncidentState
    from contracts.model import RouterRef
    from contracts.routing import Route, RouteSpec, Serving
    from contracts.steps import (
        READ_ROUTE,
        SEND_NOTIFICATION,
        SET_ROUTE,
        VERIFY_ROUTE,
        Notification,
        NotificationReceipt,
        ReadRouteInput,
        RouteVerification,
        SetRouteInput,
        TargetRoute,
        VerifyRouteInput,
    )
    from workflows.bookkeeping import Bookkeeping
    from workflows.routing import next_update

VERIFY_CONTAINMENT = "verify-containment-at-target"
"""Patch id: before it, a route set to the fallback counted as contained on the write's
echo alone; since, the target is asked again (and probed, if declared) first."""

Want = RouteSpec | Callable[[Route], RouteSpec]
"""The route wanted: fixed, or computed from what the router has now (e.g. containment
keeps whatever primary serves today in shadow)."""


@dataclass(frozen=True)
class RouteChange:
    """The route as the router had it before :meth:`RouterPort.ensure`, and as it confirmed it."""

    before: Route
    after: Route

    @property
    def changed(self) -> bool:
        return self.after.generation != self.before.generation


class RouterPort:
    """A model's route at its router: read, set to a spec, change only if different.

    Every write names ``updated_by`` and a reason, and creates the router's next
    generation, so a retried flip is applied once.
    """

    def __init__(self, router: RouterRef, model: str, updated_by: str, books: Bookkeeping) -> None:
        self._router = router
        self._model = model
        self._updated_by = updated_by
        self._books = books

    async def read(self, step_name: str, options: dict[str, Any]) -> TargetRoute:
        """The route as the target holds it, with the target's revision of it (if any)."""
        route: TargetRoute = await workflow.execute_activity(
            READ_ROUTE,
            ReadRouteInput(
                target=self._router.target, router_url=self._router.url, model=self._model
            ),
            result_type=TargetRoute,
            activity_id=self._books.activity_id(step_name),
            **options,
        )
        return route

    async def ensure(
        self, step_name: str, options: dict[str, Any], want: Want, reason: str
    ) -> RouteChange:
        """Read the route, then set what is wanted unless the router already has it.

        The read comes first and is kept (``before``): it is what a rollback restores.
        The write names the revision read, so a target with revisions (a flag file)
        refuses it if anyone changed the route in between (``StaleRoute``). A route
        that should now serve the fallback is only returned once the target has
        confirmed it in its own answer (:meth:`verify`).
        """
        current = await self.read(step_name, options)
        spec = want if isinstance(want, RouteSpec) else want(current)
        if current.spec().same_routing(spec):
            return RouteChange(before=current, after=await self.verify(step_name, options, current))
        route = await self.write(step_name, options, current, spec, reason)
        return RouteChange(before=current, after=await self.verify(step_name, options, route))

    async def contain_in_this_task(
        self, step_name: str, options: dict[str, Any], reason: str
    ) -> RouteChange:
        """:meth:`ensure` of the contained route (fallback serving, the primary in shadow),
        as one *local* activity run inside the current workflow task.

        For the watch, where every second from alert to fallback counts: in a storm the
        three activities of :meth:`ensure` each wait in the task queue and for another
        workflow task. The activity (:mod:`activities.containment`) makes the same
        read, compare, set-next-generation and verify, from the same routing activities.
        ``options`` are local-activity options.
        """
        contained: ContainedRoute = await workflow.execute_local_activity(
            CONTAIN_ROUTE,
            ContainRouteInput(
                target=self._router.target,
                router_url=self._router.url,
                model=self._model,
                updated_by=self._updated_by,
                reason=reason,
            ),
            result_type=ContainedRoute,
            activity_id=self._books.activity_id(step_name),
            **options,
        )
        return RouteChange(before=contained.before, after=contained.after)

    async def write(
        self,
        step_name: str,
        options: dict[str, Any],
        current: TargetRoute,
        spec: RouteSpec,
        reason: str,
    ) -> Route:
        """Set ``spec`` as the generation after ``current`` (a retry resends the same one),
        naming the revision ``current`` was read at (a flag file refuses a changed flag).

        Only for a caller that has just read ``current`` and decided on its own terms that
        the route must change (the shadow retirement); everyone else calls :meth:`ensure`.
        """
        route: Route = await workflow.execute_activity(
            SET_ROUTE,
            SetRouteInput(
                target=self._router.target,
                router_url=self._router.url,
                model=self._model,
                update=next_update(current, spec, self._updated_by, reason),
                expected_revision=current.revision,
            ),
            result_type=Route,
            activity_id=self._books.activity_id(step_name),
            **options,
        )
        return route

    async def verify(self, step_name: str, options: dict[str, Any], route: Route) -> Route:
        """``route``, once the target confirms it: for a route serving the fallback, the
        target is asked again (``verify_route``: its route read back, and the operator's
        probe request if one is declared) before anyone may call the model contained.

        A disagreeing answer fails the activity (``ContainmentUnverified``), so containment
        keeps trying and escalates rather than reporting "contained". Other routes are
        returned as the router answered.
        """
        if route.serving is not Serving.FALLBACK or not workflow.patched(VERIFY_CONTAINMENT):
            return route
        verified: RouteVerification = await workflow.execute_activity(
            VERIFY_ROUTE,
            VerifyRouteInput(
                target=self._router.target,
                router_url=self._router.url,
                model=self._model,
                expected=route.spec(),
                generation=route.generation,
            ),
            result_type=RouteVerification,
            activity_id=self._books.activity_id(step_name),
            **options,
        )
        return verified.route


async def send_notification(
    notification: Notification, activity_id: str, options: dict[str, Any]
) -> NotificationReceipt:
    receipt: NotificationReceipt = await workflow.execute_activity(
        SEND_NOTIFICATION,
        notification,
        result_type=NotificationReceipt,
        activity_id=activity_id,
        **options,
    )
    return receipt


class IncidentPorts:
    """The incident's router port, which keeps the incident's view of the route current."""

    def __init__(self, incident: IncidentInput, state: IncidentState, books: Bookkeeping) -> None:
        self._incident = incident
        self._state = state
        self._router = RouterPort(
            incident.model.router, incident.model.id, f"fairlane:{incident.incident_id}", books
        )

    async def read_route(self, step_name: str, options: dict[str, Any]) -> Route:
        return await self._router.read(step_name, options)

    async def ensure(
        self, step_name: str, options: dict[str, Any], want: Want, reason: str
    ) -> RouteChange:
        change = await self._router.ensure(step_name, options, want, reason)
        self.record_route(change.after)
        return change

    def record_route(self, route: Route) -> None:
        self._state.route_now = route
        self._state.contained = route.serving.value == "fallback"

    async def notify(
        self,
        channel: str,
        subject: str,
        message: str,
        activity_id: str,
        options: dict[str, Any],
        to: ChannelRef | None = None,
        event: NotificationEvent = "message",
    ) -> NotificationReceipt:
        return await send_notification(
            Notification(
                incident_id=self._incident.incident_id,
                channel=channel,
                severity=self._incident.severity.value,
                subject=subject,
                message=message,
                to=to,
                event=event,
            ),
            activity_id,
            options,
        )

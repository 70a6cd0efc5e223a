"""The incident's side effects on the outside world: its model's route, and notifications.

Shared by the incident workflow and the steps it delegates to (the canary ramp), so
every route change goes through one place that records it on the incident's state.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.incident import IncidentInput, IncidentState
    from contracts.routing import Route, RouteSpec
    from contracts.steps import (
        READ_ROUTE,
        SEND_NOTIFICATION,
        SET_ROUTE,
        Notification,
        NotificationReceipt,
        ReadRouteInput,
        SetRouteInput,
    )
    from workflows.bookkeeping import Bookkeeping
    from workflows.routing import next_update


class RouterPort:
    """A model's route at its router: read, set to a spec, change only if different.

    Every write names ``updated_by`` and a reason, and creates the router's next
    generation, so a retried flip is applied once.
    """

    def __init__(self, router_url: str, model: str, updated_by: str, books: Bookkeeping) -> None:
        self._router_url = router_url
        self._model = model
        self._updated_by = updated_by
        self._books = books

    async def read_route(self, step_name: str, options: dict[str, Any]) -> Route:
        route: Route = await workflow.execute_activity(
            READ_ROUTE,
            ReadRouteInput(router_url=self._router_url, model=self._model),
            result_type=Route,
            activity_id=self._books.activity_id(step_name),
            **options,
        )
        return route

    async def set_route(
        self, step_name: str, options: dict[str, Any], current: Route, spec: RouteSpec, reason: str
    ) -> Route:
        update = next_update(current, spec, self._updated_by, reason)
        route: Route = await workflow.execute_activity(
            SET_ROUTE,
            SetRouteInput(router_url=self._router_url, model=self._model, update=update),
            result_type=Route,
            activity_id=self._books.activity_id(step_name),
            **options,
        )
        return route


class IncidentPorts:
    def __init__(self, incident: IncidentInput, state: IncidentState, books: Bookkeeping) -> None:
        self._incident = incident
        self._state = state
        self._books = books
        self._router = RouterPort(
            incident.model.router.url, incident.model.id, f"fairlane:{incident.incident_id}", books
        )

    async def read_route(self, step_name: str, options: dict[str, Any]) -> Route:
        return await self._router.read_route(step_name, options)

    async def set_route(
        self, step_name: str, options: dict[str, Any], current: Route, spec: RouteSpec, reason: str
    ) -> Route:
        route = await self._router.set_route(step_name, options, current, spec, reason)
        self.record_route(route)
        return route

    async def change_route(
        self, step_name: str, options: dict[str, Any], spec: RouteSpec, reason: str
    ) -> Route:
        """Read the route, then set ``spec`` unless the router already has it."""
        current = await self.read_route(step_name, options)
        if current.spec().same_routing(spec):
            self.record_route(current)
            return current
        return await self.set_route(step_name, options, current, spec, reason)

    def record_route(self, route: Route) -> None:
        self._state.route_now = route
        self._state.contained = route.serving.value == "fallback"

    async def notify(
        self, channel: str, subject: str, message: str, activity_id: str, options: dict[str, Any]
    ) -> NotificationReceipt:
        receipt: NotificationReceipt = await workflow.execute_activity(
            SEND_NOTIFICATION,
            Notification(
                incident_id=self._incident.incident_id,
                channel=channel,
                severity=self._incident.severity.value,
                subject=subject,
                message=message,
            ),
            result_type=NotificationReceipt,
            activity_id=activity_id,
            **options,
        )
        return receipt

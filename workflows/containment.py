"""Containment is a promise, not an attempt.

Putting a model on its fallback is the first thing a bias-crisis runbook does and
the one thing it must never stop trying. :class:`Containment` runs a route change
within the step's retry budget first; when that budget is spent it escalates (the
escalation channel is told, the trail records ``containment.failing``, the incident's
state shows "failing since …") and keeps trying with capped backoff:

* a router that is down or failing (5xx, unreachable) is retried by Temporal itself,
  every ``keep_trying_every`` at the most, with no limit and no history growth, so
  the fallback is served within one interval of the router's return;
* a router that refuses (4xx: a token rotated, the model not deployed yet, another
  writer's newer generation) is tried again by the workflow after a durable timer,
  backing off to :data:`REFUSED_BACKOFF_CAP` so a week of refusals stays a bounded
  history.

It ends only when the router confirms the route, or when an incident commander
stands it down with a reason through the API (``stand_down_containment``, checked by
the API and again by :meth:`Containment.refusal`), which the trail records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.containment import (
        ESCALATION_NOTICE,
        STAND_DOWN_ROLE,
        ContainmentStatus,
        StandDown,
        StandDownReceipt,
    )
    from contracts.incident import IncidentState
    from playbooks.durations import format_duration
    from workflows.bookkeeping import Bookkeeping
    from workflows.failures import failure_text
    from workflows.options import persistent
    from workflows.ports import IncidentPorts, RouteChange, Want

CONTAINMENT_PROMISE = "containment-promise"
"""Patch id: incidents that ran out of budget before this change escalated and stopped."""
REFUSED_BACKOFF_CAP = timedelta(minutes=5)
FIRST_REFUSED_BACKOFF = timedelta(seconds=1)

T = TypeVar("T")
Notify = Callable[..., Awaitable[Any]]
"""(channel, subject, message, *, event=...): the incident's notify."""


class ContainmentStoodDown(Exception):
    """An incident commander stopped the attempts; the message says who and why."""


class Containment:
    """The incident's containment attempts, and the commander's way to stand them down."""

    def __init__(
        self,
        state: IncidentState,
        books: Bookkeeping,
        ports: IncidentPorts,
        notify: Notify,
        escalation_channel: str,
    ) -> None:
        self._state = state
        self._books = books
        self._ports = ports
        self._notify = notify
        self._escalation_channel = escalation_channel
        self._stand_down: StandDown | None = None

    # ---- the commander's stand-down ------------------------------------------------------

    def refusal(self, order: StandDown) -> str | None:
        """Why a stand-down is refused, or None: the workflow's own check after the API's."""
        status = self._state.containment
        if STAND_DOWN_ROLE not in order.principal_roles:
            return f"only an {STAND_DOWN_ROLE} may stand containment down"
        if status is None or not status.in_progress:
            return "no containment is in progress on this incident"
        return None

    async def stand_down(self, order: StandDown) -> StandDownReceipt:
        status = self._state.containment
        assert status is not None  # the validator guarantees one in progress
        status.stood_down_by, status.stood_down_reason = order.principal, order.reason
        self._stand_down = order
        await self._books.audit(
            "containment.stood_down",
            actor=order.principal,
            step=status.step,
            detail={
                "reason": order.reason,
                "failing_since": _iso(status),
                "last_error": status.last_error,
            },
        )
        return StandDownReceipt(accepted=True, step=status.step, failing_since=status.failing_since)

    # ---- the promise -------------------------------------------------------------------

    async def ensure(
        self,
        step_name: str,
        options: dict[str, Any],
        want: Want,
        reason: str,
        keep_trying_every: timedelta,
    ) -> RouteChange:
        """Get ``want`` confirmed at the router, however long it takes, unless stood down."""
        status = ContainmentStatus(step=step_name, started_at=workflow.now())
        self._state.containment = status
        self._stand_down = None
        try:
            change = await self._unless_stood_down(
                self._ports.ensure(step_name, options, want, reason)
            )
        except ActivityError as error:
            if not workflow.patched(CONTAINMENT_PROMISE):
                raise
            await self._escalate(status, failure_text(error), options)
            change = await self._keep_trying(
                step_name, persistent(options, keep_trying_every), want, reason
            )
            status.confirmed_at = workflow.now()
            await self._confirmed_after_failing(status, change)
        status.confirmed_at = status.confirmed_at or workflow.now()
        return change

    async def _keep_trying(
        self, step_name: str, options: dict[str, Any], want: Want, reason: str
    ) -> RouteChange:
        status = self._state.containment
        assert status is not None
        backoff = FIRST_REFUSED_BACKOFF
        while True:
            try:
                return await self._unless_stood_down(
                    self._ports.ensure(step_name, options, want, reason)
                )
            except ActivityError as error:  # refused: Temporal will not retry it by itself
                status.last_error = failure_text(error)
                status.refusals += 1
                await self._unless_stood_down(workflow.sleep(backoff))
                backoff = min(backoff * 2, REFUSED_BACKOFF_CAP)

    async def _unless_stood_down(self, work: Awaitable[T]) -> T:
        """``work``'s result, unless a commander stands containment down first."""
        task = asyncio.ensure_future(work)
        await workflow.wait_condition(lambda: task.done() or self._stand_down is not None)
        if task.done():
            return task.result()
        task.cancel()
        with suppress(asyncio.CancelledError, ActivityError):
            await task
        order = self._stand_down
        assert order is not None
        raise ContainmentStoodDown(f"containment stood down by {order.principal}: {order.reason}")

    async def _escalate(
        self, status: ContainmentStatus, error: str, options: dict[str, Any]
    ) -> None:
        status.failing_since = workflow.now()
        status.last_error = error
        retry = options["retry_policy"]
        await self._books.audit(
            "containment.failing",
            step=status.step,
            detail={
                "error": error,
                "failing_since": _iso(status),
                "budget": {
                    "maximum_attempts": retry.maximum_attempts,
                    "schedule_to_close": format_duration(options["schedule_to_close_timeout"])
                    if options.get("schedule_to_close_timeout")
                    else None,
                },
            },
        )
        await self._notify(
            self._escalation_channel,
            f"[{ESCALATION_NOTICE}] Containment failing: {self._state.model}",
            f"Incident {self._state.incident_id}: the model could not be put on its fallback "
            f"within the step's retry budget ({error}). Fairlane keeps trying; an incident "
            "commander can stand containment down with a reason.",
            event="containment_failing",
        )

    async def _confirmed_after_failing(
        self, status: ContainmentStatus, change: RouteChange
    ) -> None:
        failing_for = workflow.now() - (status.failing_since or status.started_at)
        route = change.after
        await self._books.audit(
            "containment.confirmed",
            step=status.step,
            detail={
                "failing_since": _iso(status),
                "failing_for_s": round(failing_for.total_seconds(), 3),
                "refusals": status.refusals,
                "serving": route.serving.value,
                "generation": route.generation,
            },
        )
        await self._notify(
            self._escalation_channel,
            f"Containment confirmed: {self._state.model}",
            f"Incident {self._state.incident_id}: the router now serves {route.serving.value} "
            f"(generation {route.generation}), after failing for "
            f"{failing_for.total_seconds():.0f}s.",
            event="containment_confirmed",
        )


def _iso(status: ContainmentStatus) -> str | None:
    return status.failing_since.isoformat() if status.failing_since else None

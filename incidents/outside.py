"""Incidents ended from outside Fairlane are noticed and put on the trail.

An incident only ends through its playbook; anyone who can reach Temporal (its CLI,
its Web UI) can still terminate or cancel it, or a run timeout can end it, and the
incident then writes nothing: the trail would just stop. A watcher over Temporal's
visibility finds incident workflows that closed TERMINATED, CANCELED or TIMED_OUT and
appends one ``incident.ended_outside`` record for each run, with who and why as the
history's closing event tells it (the identity and reason of a terminate, the identity
of a cancel request). The record's event id names the run, so however many watchers
see it, and however often, it is on the trail once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from audit.trail import AuditTrail
from contracts.audit import AuditEvent
from contracts.incident import WORKFLOW_TYPE

log = structlog.get_logger(__name__)

ENDED_OUTSIDE = "incident.ended_outside"
ENDED_OUTSIDE_QUERY = (
    f"WorkflowType = '{WORKFLOW_TYPE}' AND "
    "ExecutionStatus IN ('Terminated', 'Canceled', 'TimedOut')"
)
_STATUS = {
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CANCELED: "canceled",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}


def ended_outside_event_id(incident_id: str, run_id: str) -> str:
    return f"{incident_id}:{run_id}:{ENDED_OUTSIDE}"


async def record_outside_ends(client: Client, trail: AuditTrail, limit: int = 1000) -> list[str]:
    """One pass: record every incident run ended from outside and not on the trail yet;
    returns the incident ids recorded now."""
    recorded: list[str] = []
    async for execution in client.list_workflows(ENDED_OUTSIDE_QUERY, limit=limit):
        status = _STATUS.get(execution.status) if execution.status else None
        if status is None:
            continue
        event_id = ended_outside_event_id(execution.id, execution.run_id)
        if trail.has_event(event_id):
            continue
        who, why = await _closing(client, execution.id, execution.run_id, status)
        trail.append(
            AuditEvent(
                event_id=event_id,
                incident_id=execution.id,
                kind=ENDED_OUTSIDE,
                actor=who or "temporal",
                detail={
                    "status": status,
                    "identity": who,
                    "reason": why,
                    "run_id": execution.run_id,
                    "closed_at": execution.close_time.isoformat() if execution.close_time else None,
                    "noticed_by": "fairlane:outside-end-watch",
                },
                at=datetime.now(UTC),
            )
        )
        log.warning(
            "incident ended outside Fairlane", incident_id=execution.id, status=status, by=who
        )
        recorded.append(execution.id)
    return recorded


async def _closing(
    client: Client, workflow_id: str, run_id: str, status: str
) -> tuple[str | None, str | None]:
    """Who ended the run and why, from its history's closing events."""
    who: str | None = None
    why: str | None = None
    try:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    except RPCError as error:
        return None, f"(history unreadable: {error.message})"
    for event in reversed(history.events):
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            attributes = event.workflow_execution_terminated_event_attributes
            return attributes.identity or None, attributes.reason or None
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            attributes_c = event.workflow_execution_cancel_requested_event_attributes
            return attributes_c.identity or None, attributes_c.cause or None
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
            why = "the workflow run timed out"
    return who, why or status


async def watch_outside_ends(
    client_factory: Callable[[], Awaitable[Client]],
    trail: AuditTrail,
    every_s: float,
    stop: asyncio.Event | None = None,
) -> None:
    """Run :func:`record_outside_ends` every ``every_s`` seconds until cancelled; a pass
    that fails (Temporal or the database down) is logged and tried again next time."""
    while stop is None or not stop.is_set():
        try:
            await record_outside_ends(await client_factory(), trail)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("outside-end watch pass failed", error=str(error)[:300])
        await asyncio.sleep(every_s)

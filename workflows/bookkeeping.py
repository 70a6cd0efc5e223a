"""What every Fairlane workflow run keeps the same way: activity ids and audit events.

Activity ids read ``<step>:<n>`` so the trail's records group by step; audit events
go through the ``record_audit_event`` local activity, written by this worker without
a round trip through the server's task queues, so bookkeeping does not slow the
work it records.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.audit import AuditEvent
    from contracts.steps import RECORD_AUDIT_EVENT, RECORD_AUDIT_EVENTS

AUDIT_TIMEOUT = timedelta(seconds=30)
AUDIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)


class Bookkeeping:
    """Activity ids and audit events of one workflow run on behalf of ``incident_id``."""

    def __init__(self, incident_id: str) -> None:
        self._incident_id = incident_id
        self._activity_seq = 0
        self._event_seq = 0

    def activity_id(self, step_name: str) -> str:
        self._activity_seq += 1
        return f"{step_name}:{self._activity_seq}"

    async def audit(
        self,
        kind: str,
        *,
        actor: str | None = None,
        step: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        event = self.event(kind, actor=actor, step=step, detail=detail)
        await workflow.execute_local_activity(
            RECORD_AUDIT_EVENT,
            event,
            activity_id=self.activity_id(step or "incident"),
            start_to_close_timeout=AUDIT_TIMEOUT,
            retry_policy=AUDIT_RETRY,
        )

    async def audit_batch(self, events: list[AuditEvent], step: str) -> None:
        """Record ``events`` (built with :meth:`event`) in one local activity."""
        if events:
            await workflow.execute_local_activity(
                RECORD_AUDIT_EVENTS,
                events,
                activity_id=self.activity_id(step),
                start_to_close_timeout=AUDIT_TIMEOUT,
                retry_policy=AUDIT_RETRY,
            )

    def event(
        self,
        kind: str,
        *,
        actor: str | None = None,
        step: str | None = None,
        detail: dict[str, Any] | None = None,
        subject: str | None = None,
    ) -> AuditEvent:
        """An event of this run, on ``subject``'s trail (by default, this workflow's incident)."""
        self._event_seq += 1
        info = workflow.info()
        return AuditEvent(
            event_id=f"{info.workflow_id}/{info.run_id}/event/{self._event_seq}",
            incident_id=subject or self._incident_id,
            kind=kind,
            actor=actor or "fairlane:workflow",
            step=step,
            detail=detail or {},
            at=workflow.now(),
        )

"""What every Fairlane workflow run keeps the same way: activity ids and audit events.

Activity ids read ``<step>:<n>`` so the trail's records group by step; audit events
go through the ``record_audit_event`` local activity, written by this worker without
a round trip through the server's task queues, so bookkeeping does not slow the
work it records.

A local activity runs before its workflow task completes, so a task that then fails
or times out has already written its events, and the retried task may see more
signals and take another path. An event's id is therefore what it says, not where it
fell in the sequence: the run, its kind, a digest of its content, and how many
identical events the run had made before it. The retried task's same events land on
the same ids (written once), and an event it makes differently gets an id of its own
instead of being taken for a duplicate of whatever held its place the first time.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from audit.chain import digest
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
        self._occurrences: dict[str, int] = {}
        self._elsewhere: list[asyncio.Task[Any]] = []

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

    def record_elsewhere(self, events: list[AuditEvent], step: str, task_queue: str) -> None:
        """Record ``events`` through an activity on ``task_queue``, without waiting for it.

        For bookkeeping that must not hold this workflow's task or its worker's slots: a
        watch in an alert storm records thousands of alerts, and the worker that contains
        models should spend its slots containing them. The activity retries until the
        trail has the events (ids by content: a retry writes nothing twice); call
        :meth:`settled` before the run ends or continues as new.
        """
        if not events:
            return
        self._elsewhere = [task for task in self._elsewhere if not task.done()]
        self._elsewhere.append(
            workflow.start_activity(
                RECORD_AUDIT_EVENTS,
                events,
                task_queue=task_queue,
                activity_id=self.activity_id(step),
                start_to_close_timeout=AUDIT_TIMEOUT,
                retry_policy=AUDIT_RETRY,
            )
        )

    async def settled(self) -> None:
        """Wait until everything recorded elsewhere is on the trail."""
        pending, self._elsewhere = self._elsewhere, []
        if pending:
            await asyncio.gather(*pending)

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
        content = {
            "incident_id": subject or self._incident_id,
            "kind": kind,
            "actor": actor or "fairlane:workflow",
            "step": step,
            "detail": detail or {},
        }
        identity = digest(content).removeprefix("sha256:")[:32]
        occurrence = self._occurrences[identity] = self._occurrences.get(identity, 0) + 1
        info = workflow.info()
        return AuditEvent(
            event_id=f"{info.workflow_id}/{info.run_id}/{kind}/{identity}/{occurrence}",
            at=workflow.now(),
            **content,
        )

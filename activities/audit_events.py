"""The activity that writes one audit event the workflow decided on itself.

Human decisions (sign-offs, pause, promote, abort) and phase changes happen inside the
workflow, which may not do I/O; it hands them to this activity. The event's own
``event_id`` makes a retried call harmless.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from audit.trail import AuditTrail
from contracts.audit import AuditEvent
from contracts.steps import RECORD_AUDIT_EVENTS


class AuditActivities:
    """Activities that need the trail; build one per worker, register its bound methods."""

    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail

    @activity.defn(name="record_audit_event")
    async def record_audit_event(self, event: AuditEvent) -> int:
        """Append ``event`` to the trail and return its seq (the stored one on a repeat)."""
        record = await asyncio.to_thread(self._trail.append, event)
        return record.seq

    @activity.defn(name=RECORD_AUDIT_EVENTS)
    async def record_audit_events(self, events: list[AuditEvent]) -> list[int]:
        """Append a batch in one transaction (a watch's alerts); seqs in the batch's order."""
        records = await asyncio.to_thread(self._trail.append_many, events)
        return [record.seq for record in records]

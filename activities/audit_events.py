"""The activity that writes one audit event the workflow decided on itself.

Human decisions (sign-offs, pause, promote, abort) and phase changes happen inside the
workflow, which may not do I/O; it hands them to this activity. The event's own
``event_id`` makes a retried call harmless.
"""

from __future__ import annotations

import asyncio

from sqlmodel import Session, select
from temporalio import activity

from activities.metrics import count_phase_transition
from audit.records import AuditRecord
from audit.trail import AuditTrail
from contracts.audit import AuditEvent, RecordedEvent
from contracts.steps import RECORD_AUDIT_EVENTS

PHASE_CHANGED = "phase.changed"


class AuditActivities:
    """Activities that need the trail; build one per worker, register its bound methods."""

    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail

    @activity.defn(name="record_audit_event")
    async def record_audit_event(self, event: AuditEvent) -> RecordedEvent:
        """Append ``event`` to the trail; its seq (the stored one on a repeat) and the
        checkpoint the append signed, which the workflow's history then keeps.

        A ``phase.changed`` event is counted in ``fairlane_incident_phase_transitions_total``
        once: a call that finds it already stored does not count it again, whether it is
        a retried attempt (the first wrote it but did not report back) or attempt 1 of a
        retried workflow task (whose failed predecessor had run this local activity).
        """
        counted = event.kind == PHASE_CHANGED
        if counted:
            counted = not await asyncio.to_thread(self._stored, event.event_id)
        [record], checkpoint = await asyncio.to_thread(self._trail.append_signed, [event])
        if counted:
            count_phase_transition(str(event.detail.get("to", "unknown")))
        return RecordedEvent(seq=record.seq, checkpoint=checkpoint)

    def _stored(self, event_id: str) -> bool:
        with Session(self._trail.engine) as session:
            query = select(AuditRecord.seq).where(AuditRecord.event_id == event_id)
            return session.exec(query).first() is not None

    @activity.defn(name=RECORD_AUDIT_EVENTS)
    async def record_audit_events(self, events: list[AuditEvent]) -> list[int]:
        """Append a batch in one transaction (a watch's alerts); seqs in the batch's order."""
        records = await asyncio.to_thread(self._trail.append_many, events)
        return [record.seq for record in records]

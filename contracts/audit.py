"""What an audit event says, before the trail stores and chains it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditEvent(BaseModel):
    """One thing that happened, as written to the append-only trail.

    ``event_id`` is an idempotency key: appending an event whose id is already in the
    trail returns the stored record and writes nothing, so a retried activity that
    records a decision cannot record it twice.
    """

    event_id: str = Field(min_length=1, max_length=300)
    incident_id: str | None = None
    kind: str = Field(min_length=1, max_length=100)  # e.g. activity.completed, signoff.decided
    actor: str = Field(min_length=1, max_length=200)
    step: str | None = None
    attempt: int | None = None
    inputs_digest: str | None = None
    outputs_digest: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))

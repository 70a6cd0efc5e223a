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


class TrailCheckpoint(BaseModel):
    """A signed statement that the trail's record ``seq`` had hash ``head`` at ``at``.

    Ed25519 over ``audit.checkpoints.checkpoint_message`` by the key named ``key_id``.
    The trail's writers put one in an append-only file outside the database; the type
    lives here so the same checkpoint can also be carried elsewhere (an incident's
    Temporal history, an export) and checked with the public key alone.
    """

    seq: int = Field(ge=1, description="the record the checkpoint signs")
    head: str = Field(pattern=r"^[0-9a-f]{64}$", description="that record's hash")
    count: int = Field(ge=1, description="records in the chain up to and including seq")
    at: datetime
    key_id: str = Field(description="ed25519:<first 16 hex of sha256(raw public key)>")
    signature: str = Field(description="base64 Ed25519 signature of the checkpoint message")


class RecordedEvent(BaseModel):
    """What ``record_audit_event`` answers: the event's seq, and the checkpoint its append
    signed, if it signed one (every phase change does).

    The answer of a local activity is kept in the workflow's own history, so a phase
    change's signed checkpoint is written where no database writer can rewrite it.
    """

    seq: int
    checkpoint: TrailCheckpoint | None = None

"""The two tables of the audit trail: the append-only records and the chain head.

``audit_record`` only ever receives INSERTs. ``audit_head`` holds one row (the last seq
and hash), rewritten in the same transaction as each append: without it, deleting the
newest records would leave a shorter chain that still verifies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from audit.chain import as_utc, utc_iso


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is stored in UTC and always read back timezone-aware.

    SQLite keeps no offset and Postgres returns the session's zone; normalising both ways
    makes a record hash the same on either database.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class AuditRecord(SQLModel, table=True):
    """One stored, chained audit event. ``seq`` runs 1, 2, 3... with no gaps."""

    __tablename__ = "audit_record"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    event_id: str = Field(unique=True, max_length=300)
    incident_id: str | None = Field(default=None, index=True)
    kind: str = Field(max_length=100)
    actor: str = Field(max_length=200)
    step: str | None = None
    attempt: int | None = None
    inputs_digest: str | None = None
    outputs_digest: str | None = None
    detail: str = Field(sa_type=Text)  # canonical JSON, hashed byte for byte
    at: datetime = Field(sa_type=UTCDateTime)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)  # unique: verify() looks records up by it

    def chained_fields(self) -> dict[str, Any]:
        """Every stored column but ``hash`` and ``prev_hash``: what ``record_hash`` covers."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "incident_id": self.incident_id,
            "kind": self.kind,
            "actor": self.actor,
            "step": self.step,
            "attempt": self.attempt,
            "inputs_digest": self.inputs_digest,
            "outputs_digest": self.outputs_digest,
            "detail": self.detail,
            "at": utc_iso(self.at),
        }


class AuditHead(SQLModel, table=True):
    """The single row naming the newest record, so a truncated tail cannot go unnoticed."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_seq: int
    last_hash: str = Field(max_length=64)

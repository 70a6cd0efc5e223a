"""What ``fairlane trail export`` writes: one incident's records, hashes and all.

The records keep every stored field, so an auditor can recompute each hash offline with
``audit.chain.record_hash(prev_hash, fields)`` where ``fields`` is the record without
``hash`` and ``prev_hash``, ``at`` as ``audit.chain.utc_iso(at)`` and ``detail`` as
``canonical_json(detail)``. The verify report covers the whole chain, since the
incident's records are links in it.

An export made with proof (``GET /v1/incidents/{id}/trail``, ``fairlane trail
export``) also carries the other records between the incident's first record and
the first signed checkpoint at or after its last (``links``), and the checkpoints in
that span: ``fairlane trail verify --file EXPORT --public-key KEY`` then checks it
with nothing but the trail's public key (``audit/offline.py``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from audit.chain import canonical_json
from audit.records import AuditRecord
from audit.verify import VerifyReport
from contracts.audit import TrailCheckpoint


class ExportedRecord(BaseModel):
    """An ``AuditRecord`` as JSON, with ``detail`` parsed back into an object.

    A ``detail`` that no longer parses (someone edited the table by hand) is exported as
    the raw text instead, so the export of a damaged trail still shows what is there.
    """

    seq: int
    event_id: str
    incident_id: str | None
    kind: str
    actor: str
    step: str | None
    attempt: int | None
    inputs_digest: str | None
    outputs_digest: str | None
    detail: dict[str, Any] | str
    at: datetime
    prev_hash: str
    hash: str

    @classmethod
    def from_record(cls, record: AuditRecord) -> ExportedRecord:
        return cls.model_validate({**record.model_dump(), "detail": _parsed(record.detail)})

    def to_record(self) -> AuditRecord:
        """Back to the stored form, ``detail`` as the canonical JSON its hash covers."""
        detail = self.detail if isinstance(self.detail, str) else canonical_json(self.detail)
        return AuditRecord.model_validate({**self.model_dump(), "detail": detail})


def _parsed(detail: str) -> dict[str, Any] | str:
    try:
        value = json.loads(detail)
    except ValueError:
        return detail
    return value if isinstance(value, dict) else detail


class IncidentTrailExport(BaseModel):
    """An incident's slice of the trail, plus the verdict on the chain it belongs to."""

    incident_id: str
    exported_at: datetime
    records: list[ExportedRecord]
    verification: VerifyReport
    links: list[ExportedRecord] = Field(
        default_factory=list,
        description="other incidents' records inside the span, so every hash can be recomputed",
    )
    checkpoints: list[TrailCheckpoint] = Field(
        default_factory=list, description="signed checkpoints inside the span"
    )
    public_key_id: str | None = Field(
        default=None, description="the key the checkpoints should verify with"
    )

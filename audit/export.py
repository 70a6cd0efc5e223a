"""What ``fairlane trail export`` writes: one incident's records, hashes and all.

The records keep every stored field, so an auditor can recompute each hash offline with
``audit.chain.record_hash(prev_hash, fields)`` where ``fields`` is the record without
``hash`` and ``prev_hash``, ``at`` as ``audit.chain.utc_iso(at)`` and ``detail`` as
``canonical_json(detail)``. The verify report covers the whole chain, since the
incident's records are links in it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from audit.records import AuditRecord
from audit.verify import VerifyReport


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

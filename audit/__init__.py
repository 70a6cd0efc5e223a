"""The append-only, hash-chained audit trail that outlives Temporal's history.

Importing this package registers its tables on ``SQLModel.metadata``, so
``store.db.create_tables`` creates them.
"""

from audit.chain import GENESIS_HASH, canonical_json, digest, record_hash
from audit.export import ExportedRecord, IncidentTrailExport
from audit.records import AuditHead, AuditRecord
from audit.trail import AuditTrail
from audit.verify import ChainProblem, VerifyReport

__all__ = [
    "GENESIS_HASH",
    "AuditHead",
    "AuditRecord",
    "AuditTrail",
    "ChainProblem",
    "ExportedRecord",
    "IncidentTrailExport",
    "VerifyReport",
    "canonical_json",
    "digest",
    "record_hash",
]

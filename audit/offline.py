"""Verifying an exported incident trail offline, with nothing but the trail's public key.

The export's own ``verification`` is what the server said; an auditor who does not
trust the server recomputes everything here instead:

- every record (the incident's and the ``links`` between them) hashes to its stored
  hash and links to the one before, with no seq missing in the span;
- every checkpoint's Ed25519 signature verifies with the public key, and the record
  at its seq has the hash it signed;
- every record of the incident is at or before a checkpoint that vouches for it.

Since each hash folds in the one before it, a signed hash at the end of the span fixes
every record in it: a changed, dropped or re-hashed record cannot be hidden. What this
cannot prove is that no record of the incident exists *before* the span's first one.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.checkpoint_verify import check_checkpoints
from audit.export import IncidentTrailExport
from audit.verify import ChainProblem, ChainVerifier, VerifyReport


def verify_export(export: IncidentTrailExport, public_key: Ed25519PublicKey) -> VerifyReport:
    records = sorted(
        (exported.to_record() for exported in [*export.records, *export.links]),
        key=lambda record: record.seq,
    )
    if not records:
        problem = ChainProblem(
            seq=0, problem=f"the export holds no records of {export.incident_id}"
        )
        return VerifyReport(ok=False, records_checked=0, head_seq=None, problems=[problem])
    problems = _misfiled(export)
    by_hash = {record.hash: record for record in records}
    first = records[0]
    report = ChainVerifier(by_hash.get).check(
        records, None, after=(first.seq - 1, first.prev_hash), check_head=False
    )
    problems.extend(report.problems)
    hash_at = {record.seq: record.hash for record in records}
    signed_problems, summary = check_checkpoints(
        export.checkpoints, public_key, hash_at, last_seq=records[-1].seq, first_seq=first.seq
    )
    problems.extend(signed_problems)
    problems.extend(_unsigned(export, summary.signed_through))
    return VerifyReport(
        ok=not problems,
        records_checked=len(records),
        head_seq=None,
        problems=problems,
        checkpoints=summary,
    )


def _misfiled(export: IncidentTrailExport) -> list[ChainProblem]:
    """Records under the wrong heading: the incident's must all be its own, and no
    record of the incident may hide among the links (where a reader would skip it)."""
    wrong = [r for r in export.records if r.incident_id != export.incident_id]
    hidden = [r for r in export.links if r.incident_id == export.incident_id]
    return [
        ChainProblem(seq=r.seq, problem=f"record {r.seq} belongs to {r.incident_id!r}")
        for r in wrong
    ] + [
        ChainProblem(seq=r.seq, problem=f"record {r.seq} of the incident is filed as a link")
        for r in hidden
    ]


def _unsigned(export: IncidentTrailExport, signed_through: int | None) -> list[ChainProblem]:
    if signed_through is None:
        return []  # check_checkpoints already said nothing vouches for the span
    late = [r.seq for r in export.records if r.seq > signed_through]
    if not late:
        return []
    which = f"record {late[0]}" if len(late) == 1 else f"records {late[0]}-{late[-1]}"
    return [
        ChainProblem(
            seq=late[0],
            problem=f"{which} of the incident are after the last signed checkpoint: "
            "not covered by a signature (export again once a checkpoint covers them)",
        )
    ]

"""Checking a chain against its signed checkpoints: what the hash chain alone cannot see.

Someone who can write the database can rewrite a record and recompute every later hash
and the head row; the chain then checks out on its own. A checkpoint signed before the
rewrite still names the old hash at its seq, so the rewrite shows as a disagreement
there. Pure logic: the caller supplies the checkpoints, the public key, and the hash
of each record a checkpoint names (``hash_at``), read from the database or an export.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.checkpoints import checkpoint_signed
from audit.signing import key_id
from audit.verify import ChainProblem, CheckpointSummary
from contracts.audit import TrailCheckpoint


def check_checkpoints(
    checkpoints: Iterable[TrailCheckpoint],
    public_key: Ed25519PublicKey,
    hash_at: Mapping[int, str],
    last_seq: int,
    unreadable_lines: Iterable[int] = (),
    first_seq: int = 1,
) -> tuple[list[ChainProblem], CheckpointSummary]:
    """Problems with the checkpoints, and how far the good ones vouch for the chain.

    The records checked run from ``first_seq`` (1 for a whole trail, later for an
    export's span) to ``last_seq`` (0 for none). Each forged or unreadable
    checkpoint is a problem of its own; checkpoints the chain disagrees with are one
    problem, at the oldest, since everything after a rewrite disagrees too.
    """
    problems = [
        ChainProblem(seq=0, problem=f"checkpoint log line {line} is unreadable")
        for line in unreadable_lines
    ]
    signed: list[TrailCheckpoint] = []
    for checkpoint in checkpoints:
        if checkpoint_signed(checkpoint, public_key):
            signed.append(checkpoint)
        else:
            problems.append(
                ChainProblem(
                    seq=checkpoint.seq,
                    problem=f"checkpoint for record {checkpoint.seq} is not signed by the trail "
                    f"key {key_id(public_key)} (claims {checkpoint.key_id}): forged or altered",
                )
            )
    signed.sort(key=lambda checkpoint: checkpoint.seq)
    good = [c for c in signed if hash_at.get(c.seq) == c.head]
    bad = [c for c in signed if hash_at.get(c.seq) != c.head]
    if bad:
        problems.append(_disagreement(bad, good, hash_at, last_seq))
    signed_through = max((c.seq for c in good), default=None)
    if signed_through is None and last_seq > 0:
        problems.append(
            ChainProblem(
                seq=last_seq,
                problem="no signed checkpoint vouches for the trail: "
                f"records {first_seq}-{last_seq} are protected by the hash chain alone",
            )
        )
    summary = CheckpointSummary(
        key_id=key_id(public_key),
        checkpoints=len(good),
        signed_through=signed_through,
        unsigned_records=max(last_seq - (signed_through or first_seq - 1), 0),
    )
    return problems, summary


def _disagreement(
    bad: list[TrailCheckpoint],
    good: list[TrailCheckpoint],
    hash_at: Mapping[int, str],
    last_seq: int,
) -> ChainProblem:
    first = bad[0]
    vouched = max((c.seq for c in good if c.seq < first.seq), default=0)
    later = f" (and {len(bad) - 1} later checkpoints)" if len(bad) > 1 else ""
    if first.seq > last_seq:
        what = f"tail truncated: record {first.seq} is signed, the last record is {last_seq}"
    elif first.seq not in hash_at:
        what = f"record {first.seq}, which a checkpoint signs, is missing"
    else:
        what = f"record {first.seq} is not the record its checkpoint signed"
    return ChainProblem(
        seq=first.seq,
        problem=f"{what}{later}: the chain was changed after record {vouched} (the last one "
        f"a checkpoint still vouches for) and at or before record {first.seq}",
    )

"""Checking a chain of audit records: what was altered, removed, reordered or cut off.

Pure logic over records in seq order plus a lookup by hash, so the same checks run on
either database and on records read back from anywhere. Each problem names the seq it
was found at; one tampering is reported once, not again at every record after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import BaseModel, Field

from audit.chain import GENESIS_HASH, record_hash
from audit.records import AuditHead, AuditRecord


class ChainProblem(BaseModel):
    """One thing wrong with the chain, at the seq where it shows."""

    seq: int
    problem: str


class CheckpointSummary(BaseModel):
    """How far signed checkpoints vouch for the chain.

    Records after ``signed_through`` are protected by the hash chain alone: someone who
    can write the database can still rewrite those, until the next checkpoint.
    """

    key_id: str
    checkpoints: int = Field(description="checkpoints whose signature and record both check out")
    signed_through: int | None = Field(description="the newest record a checkpoint vouches for")
    unsigned_records: int = Field(description="records after signed_through")


class VerifyReport(BaseModel):
    """The verdict on the whole chain; ``ok`` only when ``problems`` is empty."""

    ok: bool
    records_checked: int
    head_seq: int | None
    problems: list[ChainProblem]
    checkpoints: CheckpointSummary | None = Field(
        default=None, description="absent when no trail public key is configured"
    )


def hash_matches(record: AuditRecord, seq: int) -> bool:
    """Whether ``record``'s stored hash is the hash of its contents placed at ``seq``."""
    return record_hash(record.prev_hash, {**record.chained_fields(), "seq": seq}) == record.hash


class ChainVerifier:
    """Walks the records once, in seq order, and then checks them against the head.

    ``find_by_hash`` is only called for records whose hash does not match their place,
    to tell a record that was moved (it still hashes correctly at its original seq)
    from one whose contents were changed.
    """

    def __init__(self, find_by_hash: Callable[[str], AuditRecord | None]) -> None:
        self._find_by_hash = find_by_hash
        self._origins: dict[str, int | None] = {}  # hash of a damaged record -> its seq

    def check(
        self,
        records: Iterable[AuditRecord],
        head: AuditHead | None,
        *,
        after: tuple[int, str] = (0, GENESIS_HASH),
        check_head: bool = True,
    ) -> VerifyReport:
        """Check ``records``, which should follow the record ``after`` (seq, hash).

        A whole trail starts after genesis and ends at ``head``; a slice (an export)
        starts after its first record's predecessor and has no head to check.
        """
        self._origins.clear()
        problems: list[ChainProblem] = []
        checked = 0
        last_seq, last_hash = after
        last_intact = True  # a link is only checked when the record before it is sound
        for record in records:
            checked += 1
            if record.seq > max(last_seq, 0) + 1:  # a seq below 1 is damage, not a gap
                problems.append(_gap(max(last_seq, 0), record.seq))
                last_intact = False
            intact = hash_matches(record, record.seq)
            if not intact:
                problems.append(self._misplaced_or_altered(record))
            elif last_intact and record.prev_hash != last_hash:
                problems.append(
                    ChainProblem(
                        seq=record.seq,
                        problem=f"record {record.seq} does not link to record {last_seq}: "
                        "one of them was rewritten",
                    )
                )
            last_seq, last_hash, last_intact = record.seq, record.hash, intact
        if check_head:
            problems.extend(_head_problems(head, last_seq, last_hash, checked))
        return VerifyReport(
            ok=not problems,
            records_checked=checked,
            head_seq=head.last_seq if head else None,
            problems=problems,
        )

    def _misplaced_or_altered(self, record: AuditRecord) -> ChainProblem:
        origin = self._original_seq(record)
        if origin is not None and origin != record.seq:
            return ChainProblem(
                seq=record.seq, problem=f"record {record.seq} out of order: holds record {origin}"
            )
        return ChainProblem(seq=record.seq, problem=f"record {record.seq} altered: hash mismatch")

    def _original_seq(self, record: AuditRecord) -> int | None:
        """The seq ``record`` was written at, if its contents are intact but moved.

        Follows ``prev_hash`` back through other damaged records until it reaches a
        record sitting at its own seq (or genesis, or one already worked out), then
        counts forward; ``None`` when the contents hash correctly nowhere along that
        path. Answers are remembered, so a long run of damage costs one lookup per
        record, not one per pair.
        """
        path = [record]
        seen = {record.seq}
        base: int | None = 0
        current = record
        while current.prev_hash != GENESIS_HASH:
            if current.prev_hash in self._origins:
                base = self._origins[current.prev_hash]
                break
            predecessor = self._find_by_hash(current.prev_hash)
            if predecessor is None or predecessor.seq in seen:
                base = None
                break
            if hash_matches(predecessor, predecessor.seq):
                base = predecessor.seq
                break
            path.append(predecessor)
            seen.add(predecessor.seq)
            current = predecessor
        seq = base
        for moved in reversed(path):
            if seq is not None:
                seq = seq + 1 if hash_matches(moved, seq + 1) else None
            self._origins[moved.hash] = seq
        return seq


def _gap(last_seq: int, next_seq: int) -> ChainProblem:
    first_missing, last_missing = last_seq + 1, next_seq - 1
    which = (
        f"record {first_missing}"
        if first_missing == last_missing
        else f"records {first_missing}-{last_missing}"
    )
    return ChainProblem(seq=first_missing, problem=f"{which} missing (gap after {last_seq})")


def _head_problems(
    head: AuditHead | None, last_seq: int, last_hash: str, checked: int
) -> list[ChainProblem]:
    if head is None:
        if checked == 0:
            return []
        return [ChainProblem(seq=last_seq, problem=f"head missing: last record is {last_seq}")]
    if last_seq < head.last_seq:
        return [
            ChainProblem(
                seq=last_seq + 1,
                problem=f"tail truncated: head says {head.last_seq}, last record is {last_seq}",
            )
        ]
    if last_seq > head.last_seq:
        return [
            ChainProblem(
                seq=head.last_seq + 1,
                problem=f"records after head: head says {head.last_seq}, last record is {last_seq}",
            )
        ]
    if last_hash != head.last_hash:
        return [ChainProblem(seq=last_seq, problem=f"head hash does not match record {last_seq}")]
    return []

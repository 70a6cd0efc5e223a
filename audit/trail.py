"""The audit trail: append events as a hash chain, read them back, verify, export.

Several processes append at once (the worker's activities, the API's decisions), so
each append runs under a database-wide lock (SQLite ``BEGIN IMMEDIATE``, Postgres
``pg_advisory_xact_lock``), reads the head, INSERTs the next record and moves the head
in one transaction: the chain stays a single line whoever writes. Records are never
updated or deleted by this code; only the one-row head is rewritten.

With :class:`~audit.checkpoints.TrailSigning`, the head is also signed into an
append-only checkpoint log after the commits its policy names, and ``verify`` checks
the chain against those signatures too (see ``audit/checkpoints.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from audit.chain import GENESIS_HASH, as_utc, canonical_json, record_hash
from audit.checkpoint_verify import check_checkpoints
from audit.checkpoints import TrailSigning, checkpoint_signed
from audit.export import ExportedRecord, IncidentTrailExport
from audit.records import AuditHead, AuditRecord
from audit.signing import key_id
from audit.verify import ChainVerifier, VerifyReport
from contracts.audit import AuditEvent, TrailCheckpoint
from store.db import is_sqlite, write_turn
from store.group_commit import GroupCommit

_APPEND_LOCK_KEY = int.from_bytes(b"fl-audit", "big")
"""Postgres advisory lock key that every appender takes; any constant all agree on."""

_VERIFY_BATCH = 1000
_SUPPORTED_DIALECTS = frozenset({"sqlite", "postgresql"})

_Appended = tuple[list[AuditRecord], TrailCheckpoint | None]
"""The records of one append, in its order, and the checkpoint its transaction signed."""


class AuditTrail:
    """Fairlane's append-only, hash-chained audit trail on SQLite or Postgres.

    Methods are synchronous and thread-safe; async callers run them through
    ``asyncio.to_thread`` so a database wait never stalls an event loop.
    """

    def __init__(self, engine: Engine, signing: TrailSigning | None = None) -> None:
        if engine.dialect.name not in _SUPPORTED_DIALECTS:
            raise ValueError(
                f"the audit trail needs SQLite or Postgres, not {engine.dialect.name!r}: "
                "appends rely on their locking to keep one chain"
            )
        self._engine = engine
        self._signing = signing
        self._commits: GroupCommit[Sequence[AuditEvent], _Appended] = GroupCommit(
            self._append_groups
        )

    @property
    def signing(self) -> TrailSigning | None:
        """The checkpoint log and keys, when the trail's head is signed."""
        return self._signing

    @property
    def engine(self) -> Engine:
        """The database the trail lives in (Fairlane's own tables share it)."""
        return self._engine

    def append(self, event: AuditEvent) -> AuditRecord:
        """Chain ``event`` onto the trail and return its record.

        Idempotent by ``event_id``: an event already in the trail returns the stored
        record and writes nothing, so retried activities never record twice.
        """
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Chain ``events`` in order, in one transaction: a storm of alerts costs one lock
        and one commit per batch, not per alert. Idempotent per event like :meth:`append`."""
        return self.append_signed(events)[0]

    def append_signed(self, events: Sequence[AuditEvent]) -> _Appended:
        """:meth:`append_many`, and the checkpoint the append signed, if its policy made one.

        Appenders of this process that arrive while another append is under way are
        chained together in the next transaction (:class:`~store.group_commit.GroupCommit`):
        one lock and one commit for all of them, each returning once its own events are
        committed. They share the checkpoint that transaction signed.
        """
        if not events:
            return [], None
        return self._commits.submit(events)

    def _append_groups(self, groups: list[Sequence[AuditEvent]]) -> list[_Appended]:
        stored, checkpoint = self._append_in_one_transaction([e for g in groups for e in g])
        appended: list[_Appended] = []
        start = 0
        for group in groups:
            appended.append((stored[start : start + len(group)], checkpoint))
            start += len(group)
        return appended

    def _append_in_one_transaction(self, events: Sequence[AuditEvent]) -> _Appended:
        with write_turn(self._engine), Session(self._engine, expire_on_commit=False) as session:
            self._lock_for_append(session)
            ids = [event.event_id for event in events]
            existing = {
                record.event_id: record
                for record in session.exec(
                    select(AuditRecord).where(col(AuditRecord.event_id).in_(ids))
                )
            }
            head = session.get(AuditHead, 1)
            seq, prev_hash = (head.last_seq, head.last_hash) if head else (0, GENESIS_HASH)
            previous_seq = seq
            stored: list[AuditRecord] = []
            new_kinds: set[str] = set()
            for event in events:
                record = existing.get(event.event_id)
                if record is None:
                    seq += 1
                    record = _chained(event, seq=seq, prev_hash=prev_hash)
                    prev_hash = record.hash
                    existing[event.event_id] = record
                    new_kinds.add(record.kind)
                    session.add(record)
                stored.append(record)
            if head is None:
                head = AuditHead(last_seq=seq, last_hash=prev_hash)
            else:
                head.last_seq, head.last_hash = seq, prev_hash
            session.add(head)
            session.commit()
        checkpointer = self._signing.checkpointer if self._signing else None
        if checkpointer is not None and checkpointer.due(previous_seq, seq, new_kinds):
            # After the commit, from the values this transaction wrote: the signed
            # (seq, head) is exactly what the database now holds at seq.
            return stored, checkpointer.checkpoint(seq, prev_hash)
        return stored, None

    def has_event(self, event_id: str) -> bool:
        """Whether an event with this idempotency key is on the trail."""
        with Session(self._engine) as session:
            found = session.exec(
                select(AuditRecord.seq).where(AuditRecord.event_id == event_id).limit(1)
            ).first()
        return found is not None

    def checkpoint(self) -> TrailCheckpoint | None:
        """Sign the current head now (``fairlane trail checkpoint``); ``None`` if empty.

        Raises ``RuntimeError`` if this trail holds no signing key.
        """
        checkpointer = self._signing.checkpointer if self._signing else None
        if checkpointer is None:
            raise RuntimeError("this trail has no signing key: checkpoints cannot be signed")
        with Session(self._engine) as session:
            head = session.get(AuditHead, 1)
        if head is None or head.last_seq == 0:
            return None
        return checkpointer.checkpoint(head.last_seq, head.last_hash)

    def records(
        self, incident_id: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        """Records in seq order, optionally one incident's, after a seq, at most ``limit``."""
        with Session(self._engine) as session:
            return _read(session, incident_id, after_seq, limit)

    def verify(self) -> VerifyReport:
        """Check the whole chain, from one consistent snapshot of the database, and,
        when the trail is signed, against every checkpoint in the log."""
        with self._snapshot() as session:
            return self._verify(session)

    def export(self, incident_id: str, proof: bool = False) -> IncidentTrailExport:
        """The incident's records with their hashes, and the verdict on the whole chain.

        Both come from the same snapshot. With ``proof`` (and a signed trail), the export
        also carries what an auditor needs to check it offline with the public key
        alone: every other record between the incident's first record and the first
        checkpoint at or after its last one (``links``), and the checkpoints in that
        span. If no checkpoint covers the incident's last record yet and this process
        holds the key, the current head is signed first. An unknown incident exports no
        records; telling the caller it does not exist is the API's job.
        """
        if proof and self._signing is not None and self._signing.checkpointer is not None:
            self._cover(incident_id)
        with self._snapshot() as session:
            records = _read(session, incident_id, after_seq=0, limit=None)
            export = IncidentTrailExport(
                incident_id=incident_id,
                exported_at=datetime.now(UTC),
                records=[ExportedRecord.from_record(record) for record in records],
                verification=self._verify(session),
            )
            if proof and self._signing is not None and records:
                self._add_proof(session, export, records[0].seq, records[-1].seq)
            return export

    def _signed_checkpoints(self) -> list[TrailCheckpoint]:
        assert self._signing is not None
        checkpoints, _ = self._signing.log.read()
        return [c for c in checkpoints if checkpoint_signed(c, self._signing.public_key)]

    def _cover(self, incident_id: str) -> None:
        """Sign the head if no checkpoint reaches the incident's last record yet."""
        with Session(self._engine) as session:
            last = session.exec(
                select(AuditRecord.seq)
                .where(AuditRecord.incident_id == incident_id)
                .order_by(col(AuditRecord.seq).desc())
            ).first()
        if last is not None and all(c.seq < last for c in self._signed_checkpoints()):
            self.checkpoint()

    def _add_proof(
        self, session: Session, export: IncidentTrailExport, first: int, last: int
    ) -> None:
        assert self._signing is not None
        signed = self._signed_checkpoints()
        end = min((c.seq for c in signed if c.seq >= last), default=last)
        links = session.exec(
            select(AuditRecord)
            .where(col(AuditRecord.seq).between(first, end))
            .where(col(AuditRecord.incident_id).is_distinct_from(export.incident_id))
            .order_by(col(AuditRecord.seq))
        )
        export.links = [ExportedRecord.from_record(record) for record in links]
        unique = {c.signature: c for c in signed if first <= c.seq <= end}
        export.checkpoints = sorted(unique.values(), key=lambda c: c.seq)
        export.public_key_id = key_id(self._signing.public_key)

    def _verify(self, session: Session) -> VerifyReport:
        if self._signing is None:
            return _verify(session)
        checkpoints, unreadable = self._signing.log.read()
        wanted = {checkpoint.seq for checkpoint in checkpoints}
        hash_at: dict[int, str] = {}
        last_seq = 0

        def walk() -> Iterator[AuditRecord]:
            nonlocal last_seq
            for record in _all_records(session):
                if record.seq in wanted:
                    hash_at[record.seq] = record.hash
                last_seq = max(last_seq, record.seq)
                yield record

        report = _verify(session, walk())
        problems, summary = check_checkpoints(
            checkpoints, self._signing.public_key, hash_at, last_seq, unreadable
        )
        report.problems.extend(problems)
        report.ok = not report.problems
        report.checkpoints = summary
        return report

    def _lock_for_append(self, session: Session) -> None:
        connection = session.connection()
        if is_sqlite(self._engine):
            # pysqlite leaves the transaction unopened until the first write; opening it
            # IMMEDIATE takes the write lock now, before the head is read.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK_KEY}
            )

    @contextmanager
    def _snapshot(self) -> Iterator[Session]:
        """A read-only session that sees one instant of the database throughout."""
        with Session(self._engine) as session:
            if is_sqlite(self._engine):
                session.connection().exec_driver_sql("BEGIN")
            else:
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session


def _chained(event: AuditEvent, seq: int, prev_hash: str) -> AuditRecord:
    record = AuditRecord(
        seq=seq,
        event_id=event.event_id,
        incident_id=event.incident_id,
        kind=event.kind,
        actor=event.actor,
        step=event.step,
        attempt=event.attempt,
        inputs_digest=event.inputs_digest,
        outputs_digest=event.outputs_digest,
        detail=canonical_json(event.detail),
        at=as_utc(event.at),
        prev_hash=prev_hash,
        hash="",
    )
    record.hash = record_hash(prev_hash, record.chained_fields())
    return record


def _read(
    session: Session, incident_id: str | None, after_seq: int, limit: int | None
) -> list[AuditRecord]:
    query = select(AuditRecord).where(AuditRecord.seq > after_seq).order_by(col(AuditRecord.seq))
    if incident_id is not None:
        query = query.where(AuditRecord.incident_id == incident_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def _verify(session: Session, records: Iterator[AuditRecord] | None = None) -> VerifyReport:
    def find_by_hash(hash_: str) -> AuditRecord | None:
        return session.exec(select(AuditRecord).where(AuditRecord.hash == hash_)).first()

    walk = _all_records(session) if records is None else records
    return ChainVerifier(find_by_hash).check(walk, session.get(AuditHead, 1))


def _all_records(session: Session) -> Iterator[AuditRecord]:
    """Every record in seq order, a batch at a time, without holding them all in memory.

    The first batch has no lower bound, so a record whose seq was set to zero or below
    is still seen (and reported) rather than silently skipped.
    """
    query = select(AuditRecord).order_by(col(AuditRecord.seq)).limit(_VERIFY_BATCH)
    batch = list(session.exec(query))
    while batch:
        yield from batch
        session.expunge_all()
        batch = list(session.exec(query.where(AuditRecord.seq > batch[-1].seq)))

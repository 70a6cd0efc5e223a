"""Reading one incident's trail a page at a time, for people at a screen.

An incident's trail runs to tens of thousands of records (a canary looking every hour
for weeks, an activity record per step attempt). A page holds at most ``size`` of them
and names its neighbours by record sequence number (keyset pagination: ``before`` the
page's first record, ``after`` its last), never by offset, so a page stays the same
page while new records arrive and costs an index range scan however far back it is.
A search (a kind prefix, an actor, text anywhere in the record) narrows the records
and pages the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from audit.records import AuditRecord

PAGE_SIZE = 200


@dataclass(frozen=True)
class TrailSearch:
    """Which of an incident's records to show; empty fields narrow nothing."""

    kind: str = ""
    """A kind or the start of one: ``signoff`` finds ``signoff.opened`` and ``signoff.decided``."""
    actor: str = ""
    """Exactly this actor."""
    text: str = ""
    """Anywhere in the kind, actor, step or detail, ignoring case."""
    hidden_kinds: frozenset[str] = field(default_factory=frozenset)
    """Kinds shown elsewhere (the incident page charts its canary looks)."""

    @property
    def narrows(self) -> bool:
        return bool(self.kind or self.actor or self.text)


@dataclass
class TrailPage:
    """Up to a page of records, oldest first, and where the neighbouring pages start."""

    records: list[AuditRecord]
    matching: int
    """How many of the incident's records match the search, on every page."""
    older_before: int | None
    """``before`` for the page of older records, or None when there are none."""
    newer_after: int | None
    """``after`` for the page of newer records, or None when there are none."""


def _conditions(incident_id: str, search: TrailSearch) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [col(AuditRecord.incident_id) == incident_id]
    if search.hidden_kinds:
        conditions.append(col(AuditRecord.kind).not_in(sorted(search.hidden_kinds)))
    if search.kind:
        conditions.append(col(AuditRecord.kind).startswith(search.kind, autoescape=True))
    if search.actor:
        conditions.append(col(AuditRecord.actor) == search.actor)
    if search.text:
        conditions.append(
            or_(
                *(
                    column.icontains(search.text, autoescape=True)
                    for column in (
                        col(AuditRecord.kind),
                        col(AuditRecord.actor),
                        col(AuditRecord.step),
                        col(AuditRecord.detail),
                    )
                )
            )
        )
    return conditions


def read_page(
    engine: Engine,
    incident_id: str,
    search: TrailSearch | None = None,
    *,
    before: int | None = None,
    after: int | None = None,
    size: int = PAGE_SIZE,
) -> TrailPage:
    """The matching records just before ``before``, just after ``after``, or (neither)
    the newest ones; giving both is the caller's mistake to refuse."""
    if before is not None and after is not None:
        raise ValueError("a page starts before a record or after one, not both")
    conditions = _conditions(incident_id, search or TrailSearch())
    seq = col(AuditRecord.seq)
    with Session(engine) as session:

        def any_where(*more: ColumnElement[bool]) -> bool:
            query = select(AuditRecord.seq).where(*conditions, *more).limit(1)
            return session.exec(query).first() is not None

        query = select(AuditRecord).where(*conditions)
        if after is not None:
            rows = list(session.exec(query.where(seq > after).order_by(seq).limit(size + 1)))
            more_newer, rows = len(rows) > size, rows[:size]
            more_older = any_where(seq <= after)
        else:
            if before is not None:
                query = query.where(seq < before)
            rows = list(session.exec(query.order_by(seq.desc()).limit(size + 1)))
            more_older, rows = len(rows) > size, rows[:size][::-1]
            more_newer = before is not None and any_where(seq >= before)
        counted = select(func.count()).select_from(AuditRecord).where(*conditions)
        matching = session.exec(counted).one()
    first = rows[0].seq if rows else (after + 1 if after is not None else before)
    last = rows[-1].seq if rows else (before - 1 if before is not None else after)
    return TrailPage(
        records=rows,
        matching=int(matching),
        older_before=first if more_older else None,
        newer_after=last if more_newer else None,
    )


def records_of_kind(engine: Engine, incident_id: str, kind: str) -> list[AuditRecord]:
    """Every one of the incident's records of one kind, oldest first (the canary's looks)."""
    with Session(engine) as session:
        query = (
            select(AuditRecord)
            .where(col(AuditRecord.incident_id) == incident_id, col(AuditRecord.kind) == kind)
            .order_by(col(AuditRecord.seq))
        )
        return list(session.exec(query))

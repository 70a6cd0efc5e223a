"""Every decision the gateway makes, live and shadow, for monitoring and audit to query.

A shadow row is written in the same transaction as the live decision it shadows, so
the log never holds one without the other.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index
from sqlmodel import Field, Session, SQLModel, col, select

from contracts.routing import Serving
from router.columns import UtcDateTime
from router.schemas import DecisionRecord


class DecisionRow(SQLModel, table=True):
    """One model (or rules) output for one request, keyed by the manifest's group and stratum."""

    __tablename__ = "gateway_decision"
    __table_args__ = (Index("ix_gateway_decision_model_at", "model", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    model: str = Field(max_length=100)
    version: str = Field(max_length=100)
    served_by: str = Field(max_length=20)
    shadow: bool
    shadow_of: int | None = None
    request_id: str = Field(max_length=200)
    group: str = Field(max_length=400)
    stratum: str = Field(max_length=400)
    decision: bool
    amount: float
    rules_version: str | None = Field(default=None, max_length=64)


def log_decisions(
    session: Session, live: list[DecisionRow], shadows: list[list[DecisionRow]]
) -> list[int]:
    """Write live decisions and their shadow scores (``shadows[i]`` shadow ``live[i]``) in
    one transaction; returns the live decisions' ids, in order."""
    session.add_all(live)
    session.flush()
    ids = [row.id for row in live]  # read before commit, which would expire them
    if any(i is None for i in ids):
        raise RuntimeError("the database assigned no id to a logged decision")
    for decision_id, rows in zip(ids, shadows, strict=True):
        for row in rows:
            row.shadow_of = decision_id
            session.add(row)
    session.commit()
    return [i for i in ids if i is not None]


def query_decisions(
    session: Session,
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    served_by: Serving | None = None,
    include_shadow: bool = False,
    limit: int = 1000,
) -> list[DecisionRecord]:
    """Decisions of ``model`` with ``since <= at < until``, oldest first, at most ``limit``."""
    query = select(DecisionRow).where(col(DecisionRow.model) == model)
    if since is not None:
        query = query.where(col(DecisionRow.at) >= since)
    if until is not None:
        query = query.where(col(DecisionRow.at) < until)
    if served_by is not None:
        query = query.where(col(DecisionRow.served_by) == served_by.value)
    if not include_shadow:
        query = query.where(col(DecisionRow.shadow).is_(False))
    query = query.order_by(col(DecisionRow.id)).limit(limit)
    return [DecisionRecord.model_validate(row.model_dump()) for row in session.exec(query)]

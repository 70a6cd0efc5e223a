"""Every decision the gateway makes, live and shadow, logged through :mod:`decisions`.

The gateway writes the shared decision records (:class:`decisions.records.DecisionRecord`)
with :func:`decisions.store.append`, so its log rolls up per minute as it is written and
a canary look costs cells x minutes. A live decision's id is minted here; a shadow score
is logged under ``<live id>/shadow/<version>``, in the same transaction as the live
decision it shadows, so the log never holds one without the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from contracts.routing import Serving
from decisions.records import DecisionRecord
from decisions.store import append
from decisions.tables import DECISIONS
from router.schemas import LoggedDecision

SHADOW_MARK = "/shadow/"


def new_decision_id() -> str:
    return uuid.uuid4().hex


def shadow_id(live_id: str, version: str) -> str:
    return f"{live_id}{SHADOW_MARK}{version}"


def log_decisions(session: Session, records: Sequence[DecisionRecord]) -> None:
    """Write live decisions and their shadow scores in one transaction (all or nothing)."""
    append(session, records)


def query_decisions(
    session: Session,
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    served_by: Serving | None = None,
    include_shadow: bool = False,
    limit: int = 1000,
) -> list[LoggedDecision]:
    """Decisions of ``model`` with ``since <= at < until``, oldest first, at most ``limit``."""
    table = DECISIONS.c
    query = select(DECISIONS).where(table.model == model)
    if since is not None:
        query = query.where(table.at >= since)
    if until is not None:
        query = query.where(table.at < until)
    if served_by is not None:
        query = query.where(table.served_by == served_by.value)
    if not include_shadow:
        query = query.where(table.shadow.is_(False))
    query = query.order_by(table.id).limit(limit)
    rows = session.connection().execute(query).all()
    session.rollback()  # end the read transaction
    return [
        LoggedDecision(
            decision_id=row.decision_id,
            at=row.at,
            model=row.model,
            version=row.version,
            served_by=Serving(row.served_by),
            shadow=row.shadow,
            shadow_of=row.decision_id.split(SHADOW_MARK)[0] if row.shadow else None,
            group=row.group,
            stratum=row.stratum,
            decision=row.decision,
            amount=row.amount,
            rules_version=row.rules_version,
            outcome=row.outcome,
        )
        for row in rows
    ]

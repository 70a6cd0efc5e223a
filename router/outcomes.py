"""Ground truth joined to decisions after the fact: did the applicant repay?

Outcomes arrive weeks after the decision they judge, so they live in a table of their
own keyed by the live decision's id, and the decision log itself stays append-only.
An outcome, once recorded, is final: sending it again changes nothing, and sending the
opposite is refused, so a replayed feed is harmless and a contradictory one is loud.
A batch is recorded all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

import structlog
from sqlalchemy import Column, ForeignKey, Integer, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from router.columns import UtcDateTime
from router.decision_log import DecisionRow
from router.schemas import OutcomesRecorded

log = structlog.get_logger(__name__)

# Ids per IN (...) list: well under every database's limit on bound parameters.
_CHUNK = 500
# Two writers racing on one decision: the loser re-reads and answers from what won.
_ATTEMPTS = 3
_NAMED = 20


def name_ids(ids: Iterable[int]) -> str:
    """``[3, 5, 8]``, or the first few and how many there are in all."""
    ordered = sorted(ids)
    if len(ordered) <= _NAMED:
        return str(ordered)
    return f"{str(ordered[:_NAMED])[:-1]}, ...] ({len(ordered)} in all)"


class OutcomeRow(SQLModel, table=True):
    """The outcome of one live decision."""

    __tablename__ = "gateway_outcome"

    decision_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("gateway_decision.id"),
            primary_key=True,
            autoincrement=False,
        )
    )
    good: bool
    recorded_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class UnknownDecisionsError(ValueError):
    """Outcomes named decisions that are not live decisions of the model."""

    def __init__(
        self, model: str, missing: set[int], shadow: set[int], other_model: set[int]
    ) -> None:
        parts = []
        if missing:
            parts.append(f"no decisions {name_ids(missing)}")
        if shadow:
            parts.append(
                f"decisions {name_ids(shadow)} are shadow scores "
                "(record the outcome against the live decision they shadow)"
            )
        if other_model:
            parts.append(f"decisions {name_ids(other_model)} belong to another model")
        self.reason = (
            f"outcomes must name live decisions of model {model!r}: "
            + "; ".join(parts)
            + "; nothing was recorded"
        )
        super().__init__(self.reason)
        self.decision_ids = sorted(missing | shadow | other_model)


class OutcomeConflictError(Exception):
    """Outcomes contradicted ones already recorded for the same decisions."""

    def __init__(self, model: str, conflicting: set[int]) -> None:
        self.reason = (
            f"decisions {name_ids(conflicting)} of model {model!r} already have the opposite "
            "outcome recorded; a recorded outcome is final; nothing was recorded"
        )
        super().__init__(self.reason)
        self.decision_ids = sorted(conflicting)


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _check_decisions(session: Session, model: str, ids: list[int]) -> None:
    """Raise :class:`UnknownDecisionsError` unless every id is a live decision of ``model``."""
    found: dict[int, tuple[str, bool]] = {}
    for chunk in _chunks(ids):
        query = select(DecisionRow.id, DecisionRow.model, DecisionRow.shadow).where(
            col(DecisionRow.id).in_(chunk)
        )
        for decision_id, owner, is_shadow in session.exec(query):
            if decision_id is not None:
                found[decision_id] = (owner, is_shadow)
    missing = {i for i in ids if i not in found}
    other_model = {i for i, (owner, _) in found.items() if owner != model}
    shadows = {i for i, (owner, is_shadow) in found.items() if owner == model and is_shadow}
    if missing or shadows or other_model:
        raise UnknownDecisionsError(model, missing, shadows, other_model)


def _recorded(session: Session, ids: list[int]) -> dict[int, bool]:
    known: dict[int, bool] = {}
    for chunk in _chunks(ids):
        query = select(OutcomeRow.decision_id, OutcomeRow.good).where(
            col(OutcomeRow.decision_id).in_(chunk)
        )
        known.update(session.exec(query).all())
    return known


def record_outcomes(
    session: Session, model: str, outcomes: Mapping[int, bool], now: datetime
) -> OutcomesRecorded:
    """Record ``outcomes`` (decision id -> good) against live decisions of ``model``.

    All or nothing: raises :class:`UnknownDecisionsError` if any id is not a live
    decision of the model and :class:`OutcomeConflictError` if any contradicts an
    outcome already recorded; otherwise commits the new ones and counts the rest as
    unchanged.
    """
    ids = sorted(outcomes)
    for attempt in range(1, _ATTEMPTS + 1):
        _check_decisions(session, model, ids)
        known = _recorded(session, ids)
        conflicting = {i for i, good in known.items() if good != outcomes[i]}
        if conflicting:
            session.rollback()
            raise OutcomeConflictError(model, conflicting)
        new = [
            {"decision_id": i, "good": outcomes[i], "recorded_at": now}
            for i in ids
            if i not in known
        ]
        if new:
            try:
                session.connection().execute(insert(OutcomeRow), new)
                session.commit()
            except IntegrityError:
                session.rollback()  # another writer recorded some of these first
                if attempt == _ATTEMPTS:
                    raise
                continue
        else:
            session.rollback()  # nothing to write; end the read transaction
        log.info("outcomes recorded", model=model, recorded=len(new), unchanged=len(known))
        return OutcomesRecorded(recorded=len(new), unchanged=len(known))
    raise AssertionError("unreachable")  # pragma: no cover

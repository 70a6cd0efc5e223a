"""Write decisions and outcomes with their rollups; read a window back from the rollups.

Every write is one transaction that changes the log and the rollups together, so the
rollups never claim a decision the log does not hold (nor miss one it does):

* :func:`append` is idempotent by ``(model, decision_id)``: a record sent again changes
  nothing, a *different* record under a known id is a :class:`DecisionConflict` naming
  it, and a batch is written all or nothing.
* :func:`record_outcomes` moves each decision's rollup from "outcome unknown" to its
  outcome. An outcome is final: sent again it changes nothing, the opposite is refused.
* :func:`window` sums the rollups of ``[since, until)`` into canary cells.

Window edges are minute-aligned: a window counts the minutes that *overlap*
``[since, until)``, i.e. every decision with ``floor_minute(since) <= at <
ceil_minute(until)``. A look never misses a decision made inside its window (a look
seconds after traffic still sees it); it may count up to a minute of decisions on
either side, against bakes of hours to days. The window says which span it really
covered (``covered_since`` / ``covered_until``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from contracts.metrics import DecisionCell, DecisionWindow, Side
from contracts.routing import Serving
from decisions.bulk import executemany
from decisions.records import DecisionRecord, OutcomeRecord, epoch_minute
from decisions.tables import DECISIONS, ROLLUP_KEY, ROLLUPS, flag, unflag

# Ids per IN (...) list: well under every database's limit on bound parameters.
_CHUNK = 500

_ROW_FIELDS = (
    "model",
    "minute",
    "shadow",
    "served_by",
    "version",
    "group",
    "stratum",
    "decision",
    "amount",
)
_COMPARED = (
    "version",
    "served_by",
    "shadow",
    "at",
    "group",
    "stratum",
    "decision",
    "amount",
    "rules_version",
)


class DecisionStoreError(ValueError):
    """A batch the store refused, naming the record (its index in the batch) and field."""

    def __init__(self, index: int, field: str, reason: str) -> None:
        self.index = index
        self.field = field
        self.reason = reason
        super().__init__(f"record {index} ({field}): {reason}")


class DecisionConflict(DecisionStoreError):
    """A decision id already logged (or given twice) with a different record."""


class UnknownDecision(DecisionStoreError):
    """An outcome for a decision id the model never logged."""


class OutcomeConflict(DecisionStoreError):
    """An outcome that contradicts the one already recorded for its decision."""


@dataclass(frozen=True, slots=True)
class OutcomeCell:
    """Newly recorded outcomes sharing their decisions' labels and their verdict.

    What a Prometheus exporter counts (:mod:`decisions.prometheus`)."""

    model: str
    version: str
    served_by: str
    shadow: bool
    group: str
    stratum: str
    decision: bool | None
    outcome: bool
    count: int
    amount_sum: float
    amount_sumsq: float


@dataclass(frozen=True, slots=True)
class RecordedOutcomes:
    recorded: int
    """outcomes newly recorded by this call"""
    unchanged: int
    """outcomes already recorded with the same verdict (a resent feed)"""
    cells: list[OutcomeCell]


class UnsupportedDatabase(ValueError):
    """The decision store writes with ON CONFLICT, as SQLite and Postgres spell it."""


def _insert(connection: Connection, table: Table) -> Any:
    """An INSERT that can say ON CONFLICT on this connection's dialect."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise UnsupportedDatabase(f"decision store on {dialect!r}: SQLite or Postgres only")


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _row(record: DecisionRecord) -> dict[str, Any]:
    return {
        "model": record.model,
        "decision_id": record.decision_id,
        "version": record.version,
        "served_by": record.served_by.value,
        "shadow": record.shadow,
        "at": record.at,
        "minute": epoch_minute(record.at),
        "group": record.group,
        "stratum": record.stratum,
        "decision": record.decision,
        "amount": record.amount,
        "rules_version": record.rules_version,
        "outcome": None,
    }


def _differs(new: Mapping[str, Any], old: Mapping[Any, Any]) -> str | None:
    """The first field a resent record changes, or None when it is the same record."""
    for name in _COMPARED:
        if new[name] != old[name]:
            return name
    return None


def _unique(records: Sequence[DecisionRecord]) -> list[tuple[int, dict[str, Any]]]:
    """The batch's rows, each (model, decision_id) once, with their indexes in the batch."""
    first: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    for index, record in enumerate(records):
        row = _row(record)
        key = (record.model, record.decision_id)
        seen = first.get(key)
        if seen is None:
            first[key] = (index, row)
            rows.append((index, row))
            continue
        field = _differs(row, seen[1])
        if field is not None:
            raise DecisionConflict(
                index,
                field,
                f"decision {record.decision_id!r} is given twice in the batch with a different "
                f"{field} (first as record {seen[0]})",
            )
    return rows


def _rollup_increments(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows summed per rollup cell, sorted by key so concurrent writers lock in one order."""
    sums: dict[tuple[Any, ...], list[float]] = {}
    for row in rows:
        key = (
            row["model"],
            row["minute"],
            row["shadow"],
            row["served_by"],
            row["version"],
            row["group"],
            row["stratum"],
            flag(row["decision"]),
            flag(row["outcome"]),
        )
        amount = row["amount"] or 0.0
        sign = row.get("sign", 1)
        total = sums.setdefault(key, [0, 0.0, 0.0])
        total[0] += sign
        total[1] += sign * amount
        total[2] += sign * amount * amount
    return [
        {
            **dict(zip(ROLLUP_KEY, key, strict=True)),
            "count": int(c),
            "amount_sum": s,
            "amount_sumsq": q,
        }
        for key, (c, s, q) in sorted(sums.items())
    ]


def _rollup_upsert(dialect: str) -> Callable[[], Any]:
    """The rollup upsert for ``dialect``: add the increments to the cells, creating them."""

    def build() -> Any:
        statement = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(ROLLUPS)
        excluded = statement.excluded
        table = ROLLUPS.c
        return statement.on_conflict_do_update(
            index_elements=list(ROLLUP_KEY),
            set_={
                "count": table.count + excluded.count,
                "amount_sum": table.amount_sum + excluded.amount_sum,
                "amount_sumsq": table.amount_sumsq + excluded.amount_sumsq,
            },
        )

    return build


def _add_to_rollups(connection: Connection, increments: list[dict[str, Any]]) -> None:
    """Upsert ``increments`` (which may be negative) into the rollup cells."""
    dialect = connection.dialect.name
    _insert(connection, ROLLUPS)  # refuses a dialect without ON CONFLICT
    executemany(connection, "rollup-upsert", _rollup_upsert(dialect), ROLLUPS, increments)


def append(session: Session, records: Sequence[DecisionRecord]) -> int:
    """Log ``records`` and roll them up, in one transaction; returns how many were new.

    Idempotent by ``(model, decision_id)``: records already logged identically are
    skipped. All or nothing: a :class:`DecisionConflict` (naming the record's index
    and the first field that differs) rolls the whole batch back. Commits on success.

    Two writers racing with the same new ids: the loser's insert breaks the unique key,
    and it starts over once, finding the winner's rows logged.
    """
    rows = _unique(records)
    if not rows:
        return 0
    try:
        if _append_all_new(session.connection(), rows):
            session.commit()
            return len(rows)
    except BaseException:
        session.rollback()
        raise
    session.rollback()  # some were logged already (or the driver cannot tell): look first
    for attempt in (1, 2):
        try:
            written = _append(session.connection(), rows)
            session.commit()
            return written
        except IntegrityError:
            session.rollback()
            if attempt == 2:
                raise
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _append_all_new(connection: Connection, rows: list[tuple[int, dict[str, Any]]]) -> bool:
    """The common case, a batch of decisions never seen: insert them all, skipping none.

    Known ids are skipped by the insert (``ON CONFLICT DO NOTHING``); if the driver
    counts fewer rows than were sent, False, and the caller rolls back and looks first.
    """
    new = [row for _, row in rows]
    dialect = connection.dialect.name
    _insert(connection, DECISIONS)  # refuses a dialect without ON CONFLICT
    inserted = executemany(connection, "decision-insert-new", _insert_new(dialect), DECISIONS, new)
    if inserted != len(new):
        return False
    _add_to_rollups(connection, _rollup_increments(new))
    return True


def _insert_new(dialect: str) -> Callable[[], Any]:
    def build() -> Any:
        statement = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(DECISIONS)
        return statement.on_conflict_do_nothing(index_elements=["model", "decision_id"])

    return build


def _append(connection: Connection, rows: list[tuple[int, dict[str, Any]]]) -> int:
    logged = _logged(connection, rows)
    new = [row for _, row in rows if (row["model"], row["decision_id"]) not in logged]
    executemany(connection, "decision-insert", lambda: insert(DECISIONS), DECISIONS, new)
    _add_to_rollups(connection, _rollup_increments(new))
    return len(new)


def _logged(connection: Connection, rows: list[tuple[int, dict[str, Any]]]) -> set[tuple[str, str]]:
    """Which rows are logged already; a :class:`DecisionConflict` if one differs."""
    by_model: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {}
    for index, row in rows:
        by_model.setdefault(row["model"], {})[row["decision_id"]] = (index, row)
    table = DECISIONS.c
    logged: set[tuple[str, str]] = set()
    for model, wanted in by_model.items():
        for chunk in _chunks(list(wanted)):
            query = select(*(table[name] for name in ("decision_id", *_COMPARED))).where(
                table.model == model, table.decision_id.in_(chunk)
            )
            for old in connection.execute(query):
                index, row = wanted[old.decision_id]
                field = _differs(row, old._mapping)
                if field is not None:
                    raise DecisionConflict(
                        index,
                        field,
                        f"decision {row['decision_id']!r} is already logged with a different "
                        f"{field} ({old._mapping[field]!r}, not {row[field]!r}); nothing was "
                        "written",
                    )
                logged.add((model, old.decision_id))
    return logged


def record_outcomes(
    session: Session, model: str, outcomes: Sequence[OutcomeRecord]
) -> RecordedOutcomes:
    """Join ``outcomes`` to their decisions and move their rollups, in one transaction.

    All or nothing: an outcome for a decision ``model`` never logged is an
    :class:`UnknownDecision`, one contradicting a recorded outcome (or another outcome
    for the same decision in the batch) an :class:`OutcomeConflict`. Commits on success.
    """
    wanted: dict[str, tuple[int, bool]] = {}
    for index, item in enumerate(outcomes):
        seen = wanted.get(item.decision_id)
        if seen is not None and seen[1] != item.outcome:
            raise OutcomeConflict(
                index,
                "outcome",
                f"decision {item.decision_id!r} is given outcome {item.outcome} here and "
                f"{seen[1]} as record {seen[0]}",
            )
        wanted.setdefault(item.decision_id, (index, item.outcome))
    try:
        connection = session.connection()
        table = DECISIONS.c
        found: dict[str, Any] = {}
        for chunk in _chunks(list(wanted)):
            query = (
                select(DECISIONS)
                .where(table.model == model, table.decision_id.in_(chunk))
                .with_for_update()
            )
            found.update((row.decision_id, row) for row in connection.execute(query))
        fresh = []
        unchanged = 0
        for decision_id, (index, outcome) in sorted(wanted.items(), key=lambda kv: kv[1][0]):
            row = found.get(decision_id)
            if row is None:
                raise UnknownDecision(
                    index,
                    "decision_id",
                    f"model {model!r} has no decision {decision_id!r}; nothing was recorded",
                )
            if row.outcome is None:
                fresh.append((row, outcome))
            elif row.outcome == outcome:
                unchanged += 1
            else:
                raise OutcomeConflict(
                    index,
                    "outcome",
                    f"decision {decision_id!r} already has outcome {row.outcome}; an outcome is "
                    "final; nothing was recorded",
                )
        written = _write_outcomes(connection, fresh) if fresh else []
        unchanged += len(fresh) - len(written)  # another writer recorded them first
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return RecordedOutcomes(
        recorded=len(written), unchanged=unchanged, cells=_outcome_cells(written)
    )


def _write_outcomes(
    connection: Connection, fresh: list[tuple[Any, bool]]
) -> list[tuple[Any, bool]]:
    """Set each decision's outcome and move its amount from the unknown-outcome cell;
    the outcomes this call wrote.

    Row by row, so a decision another writer gave its outcome since it was read (SQLite
    has no ``FOR UPDATE``: two identical batches can read the same rows as unknown) is
    neither written nor moved twice in the rollups.
    """
    table = DECISIONS
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id"), table.c.outcome.is_(None))
        .values(outcome=bindparam("new_outcome"))
    )
    written = [
        (row, outcome)
        for row, outcome in fresh
        if connection.execute(statement, {"row_id": row.id, "new_outcome": outcome}).rowcount == 1
    ]
    moves: list[dict[str, Any]] = []
    for row, outcome in written:
        values = {name: getattr(row, name) for name in _ROW_FIELDS}
        moves.append({**values, "outcome": None, "sign": -1})
        moves.append({**values, "outcome": outcome, "sign": 1})
    _add_to_rollups(connection, _rollup_increments(moves))
    return written


def _outcome_cells(fresh: list[tuple[Any, bool]]) -> list[OutcomeCell]:
    sums: dict[tuple[Any, ...], list[float]] = {}
    for row, outcome in fresh:
        key = (
            row.model,
            row.version,
            row.served_by,
            row.shadow,
            row.group,
            row.stratum,
            row.decision,
            outcome,
        )
        amount = row.amount or 0.0
        total = sums.setdefault(key, [0, 0.0, 0.0])
        total[0] += 1
        total[1] += amount
        total[2] += amount * amount
    return [
        OutcomeCell(
            model=model,
            version=version,
            served_by=served_by,
            shadow=shadow,
            group=group,
            stratum=stratum,
            decision=decision,
            outcome=outcome,
            count=int(c),
            amount_sum=s,
            amount_sumsq=q,
        )
        for (model, version, served_by, shadow, group, stratum, decision, outcome), (c, s, q) in (
            sums.items()
        )
    ]


_STABLE = (Serving.PRIMARY.value, Serving.FALLBACK.value)


def minute_edges(since: datetime, until: datetime) -> tuple[int, int]:
    """The minutes a window over ``[since, until)`` sums: those overlapping it, [first, end)."""
    first = epoch_minute(since)
    end = math.ceil(until.timestamp() / 60)
    return first, max(first, end)


def _minute_start(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, tz=UTC)


def window(
    session: Session,
    model: str,
    candidate_version: str,
    since: datetime,
    until: datetime,
    *,
    provider: str = "decisions",
) -> DecisionWindow:
    """Live decisions of ``model`` in the minutes overlapping ``[since, until)``, as cells.

    Read from the rollups: the cost is cells x minutes, whatever the traffic. Sides are
    those of a canary: whatever the route serves (primary, or the rules-based fallback)
    is STABLE, the candidate version answering live is CANDIDATE; decisions of another
    candidate version (an earlier one still inside the window) and shadow scores are
    left out. A model with no binary decision counts every decision as granted
    (``approved``), so its amounts are compared.
    """
    first, end = minute_edges(since, until)
    rollup = ROLLUPS.c
    keys = (
        rollup.served_by,
        rollup.group,
        rollup.stratum,
        rollup.decision,
        rollup.outcome,
    )
    query = (
        select(
            *keys,
            func.sum(rollup.count),
            func.sum(rollup.amount_sum),
            func.sum(rollup.amount_sumsq),
        )
        .where(
            rollup.model == model,
            rollup.minute >= first,
            rollup.minute < end,
            rollup.shadow.is_(False),
            or_(
                rollup.served_by.in_(_STABLE),
                and_(
                    rollup.served_by == Serving.CANDIDATE.value,
                    rollup.version == candidate_version,
                ),
            ),
        )
        .group_by(*keys)
    )
    merged: dict[tuple[Side, str, str, bool, bool | None], list[float]] = {}
    for (
        served_by,
        group,
        stratum,
        decision,
        outcome,
        count,
        amount_sum,
        amount_sumsq,
    ) in session.connection().execute(query):
        if not count:
            continue
        side = Side.STABLE if served_by in _STABLE else Side.CANDIDATE
        granted = unflag(decision)
        key = (side, group, stratum, True if granted is None else granted, unflag(outcome))
        total = merged.setdefault(key, [0, 0.0, 0.0])
        total[0] += count
        total[1] += amount_sum
        total[2] += amount_sumsq
    session.rollback()  # end the read transaction
    cells = [
        DecisionCell(
            side=side,
            group=group,
            stratum=stratum,
            approved=approved,
            outcome=outcome,
            count=int(count),
            amount_sum=amount_sum,
            amount_sumsq=max(0.0, amount_sumsq),  # moved outcomes can leave -0.0000001
        )
        for (side, group, stratum, approved, outcome), (count, amount_sum, amount_sumsq) in sorted(
            merged.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3], str(kv[0][4]))
        )
        if count >= 1
    ]
    return DecisionWindow(
        model=model,
        candidate_version=candidate_version,
        since=since,
        until=until,
        covered_since=_minute_start(first),
        covered_until=_minute_start(end),
        provider=provider,
        cells=cells,
    )

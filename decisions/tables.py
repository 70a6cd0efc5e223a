"""The decision log and its per-minute rollups, as tables on SQLite or Postgres.

``decision_record`` keeps every decision (live and shadow) once, keyed by the caller's
decision id per model. ``decision_minute`` keeps, per minute and cell, how many
decisions there were and the sum and sum of squares of their amounts: the sufficient
statistics a window look needs, so a look reads cells x minutes rows instead of every
decision. Both are written in the same transaction (:func:`decisions.store.append`).

The rollup's key columns are all NOT NULL so that an upsert can name them as its
conflict target: an unknown decision or outcome is stored as ``-1`` (``0`` false,
``1`` true), never as NULL (NULLs are distinct in a unique key).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Engine, Index, SmallInteger, Table, UniqueConstraint
from sqlmodel import Field, SQLModel

from decisions.columns import UtcDateTime
from store.db import create_tables

UNKNOWN = -1


def flag(value: bool | None) -> int:
    """A decision or outcome as a rollup key: -1 unknown, 0 false, 1 true."""
    return UNKNOWN if value is None else int(value)


def unflag(value: int) -> bool | None:
    return None if value == UNKNOWN else bool(value)


class DecisionRow(SQLModel, table=True):
    """One decision as it was written; ``outcome`` joins it when the ground truth arrives."""

    __tablename__ = "decision_record"
    __table_args__ = (
        UniqueConstraint("model", "decision_id", name="uq_decision_record_model_decision_id"),
        Index("ix_decision_record_model_at", "model", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=100)
    decision_id: str = Field(max_length=200)
    version: str = Field(max_length=100)
    served_by: str = Field(max_length=20)
    shadow: bool
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    minute: int
    group: str = Field(max_length=200)
    stratum: str = Field(max_length=200)
    decision: bool | None = None
    amount: float | None = None
    rules_version: str | None = Field(default=None, max_length=100)
    outcome: bool | None = None


class MinuteRollupRow(SQLModel, table=True):
    """Sufficient statistics of one cell in one minute. The key leads with (model, minute)
    so that a window is one range scan of the primary key. On SQLite the table is
    clustered on that key (``WITHOUT ROWID``): the scan reads the cells' sums where it
    finds their keys, instead of one table lookup per cell and minute, and an upsert
    writes one b-tree, not a table and its key's index."""

    __tablename__ = "decision_minute"
    __table_args__ = {"sqlite_with_rowid": False}

    model: str = Field(max_length=100, primary_key=True)
    minute: int = Field(primary_key=True)
    shadow: bool = Field(primary_key=True)
    served_by: str = Field(max_length=20, primary_key=True)
    version: str = Field(max_length=100, primary_key=True)
    group: str = Field(max_length=200, primary_key=True)
    stratum: str = Field(max_length=200, primary_key=True)
    decision: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    outcome: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    count: int = Field(sa_column=Column(BigInteger, nullable=False))
    amount_sum: float
    amount_sumsq: float


ROLLUP_KEY = (
    "model",
    "minute",
    "shadow",
    "served_by",
    "version",
    "group",
    "stratum",
    "decision",
    "outcome",
)


DECISIONS: Table = SQLModel.metadata.tables[DecisionRow.__tablename__]
ROLLUPS: Table = SQLModel.metadata.tables[MinuteRollupRow.__tablename__]


def create_decision_tables(engine: Engine) -> None:
    """Create the two tables on ``engine`` if they are not there yet (idempotent)."""
    create_tables(engine, [DECISIONS, ROLLUPS])

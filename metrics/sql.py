"""The SQL provider: a window of live decisions from any table or view a team keeps.

The manifest names a database an operator declared (``decisions.database``), a table or
view (``decisions.table``, ``schema.table`` allowed) and how Fairlane's fields map to
its columns (``decisions.columns``); the database does the work: one ``GROUP BY`` over
the window, with binned strata computed by ``CASE`` expressions from the manifest's
bins, so what crosses the wire grows with the cells, not the traffic. Identifiers are
SQLAlchemy constructs (quoted by the dialect), never text formatted into SQL.

The column mapping (key: Fairlane's field; value: the table's column), every key
optional:

* ``at``: when the decision was made (unmapped: a column named ``at``); rows with
  ``since <= at < until`` are counted (exact edges: the database sees every row).
* ``version``: the version that answered (unmapped: every row is the primary version);
  ``served_by``: ``primary`` / ``fallback`` / ``candidate`` (unmapped: all ``primary``);
  ``shadow``: true for shadow scores, which are left out (unmapped: none is a shadow).
* each protected attribute, each column stratum, the feature of each binned stratum
  (unmapped: a column of the same name).
* ``decision`` and ``amount`` (unmapped: the manifest's outcome names; a model without
  one has none), ``outcome`` (unmapped: the manifest's ``label``, if any; NULL while
  unknown). A model without a binary decision counts every decision as granted.

Sides are those of every provider: primary and fallback are STABLE, the candidate
version answering live is CANDIDATE, another candidate version is left out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    Float,
    String,
    and_,
    case,
    column,
    false,
    func,
    literal,
    or_,
    select,
    table,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from contracts.metrics import DecisionCell, DecisionWindow, Side
from contracts.model import DecisionSource, ModelManifest, StratumBins
from contracts.routing import Serving
from contracts.targets import RouterRef
from metrics.provider import ProviderError

MISSING = "(missing)"
"""The stratum label of a row whose binned feature is NULL."""


class SourceTime(TypeDecorator[datetime]):
    """Window edges as the team's column compares them: naive UTC on SQLite (which
    keeps text), aware UTC elsewhere (a ``timestamptz`` compares instants)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc


class _Columns:
    """The mapping with its defaults: Fairlane field -> the table's column, or None."""

    _ABSENT_UNLESS_MAPPED = ("version", "served_by", "shadow")

    def __init__(self, manifest: ModelManifest, source: DecisionSource) -> None:
        self._given = source.columns
        self._defaults: dict[str, str | None] = {
            "decision": manifest.outcomes.decision,
            "amount": manifest.outcomes.amount,
            "outcome": manifest.label,
            **dict.fromkeys(self._ABSENT_UNLESS_MAPPED),
        }

    def column(self, field: str, type_: Any = None) -> ColumnElement[Any] | None:
        name = self._given.get(field, self._defaults.get(field, field))
        return None if name is None else column(name, type_)


def bin_expression(feature: ColumnElement[Any], binned: StratumBins) -> ColumnElement[Any]:
    """``CASE`` giving each row its bin's label (bins cover the line, in order)."""
    whens: list[tuple[ColumnElement[bool], str]] = [(feature.is_(None), MISSING)]
    for item in binned.bins[:-1]:
        whens.append((feature < literal(item.below), item.label))
    return case(*whens, else_=binned.bins[-1].label)


def window_query(
    manifest: ModelManifest,
    source: DecisionSource,
    candidate_version: str,
    since: datetime,
    until: datetime,
) -> Any:
    """The GROUP BY that sums ``[since, until)`` per cell, in the table's own terms."""
    names = _Columns(manifest, source)
    schema, _, name = (source.table or "").rpartition(".")
    source_table = table(name, schema=schema or None)
    at = names.column("at", SourceTime())
    assert at is not None
    served_by = names.column("served_by", String())
    version = names.column("version", String())
    shadow = names.column("shadow", Boolean())
    decision = names.column("decision")
    amount = names.column("amount", Float())
    outcome = names.column("outcome")
    served_key = served_by if served_by is not None else literal(Serving.PRIMARY.value)
    version_key = version if version is not None else literal(manifest.primary_version)
    keys: list[ColumnElement[Any]] = [served_key.label("served_by"), version_key.label("version")]
    keys += [
        names.column(attribute).label(f"g{i}")  # type: ignore[union-attr]
        for i, attribute in enumerate(manifest.protected_attributes)
    ]
    for i, stratum in enumerate(manifest.strata):
        binned = manifest.bins.get(stratum)
        if binned is None:
            keys.append(names.column(stratum).label(f"s{i}"))  # type: ignore[union-attr]
        else:
            feature = names.column(binned.feature, Float())
            keys.append(bin_expression(feature, binned).label(f"s{i}"))  # type: ignore[arg-type]
    keys.append((decision if decision is not None else literal(None)).label("decision"))
    keys.append((outcome if outcome is not None else literal(None)).label("outcome"))
    amount_value = amount if amount is not None else literal(0.0)
    conditions: list[ColumnElement[bool]] = [at >= since, at < until]
    if shadow is not None:
        conditions.append(or_(shadow.is_(None), shadow == false()))
    if served_by is not None:
        stable = served_by.in_([Serving.PRIMARY.value, Serving.FALLBACK.value])
        candidate = and_(served_by == Serving.CANDIDATE.value, version_key == candidate_version)
        conditions.append(or_(stable, candidate))
    return (
        select(
            *keys,
            func.count().label("n"),
            func.coalesce(func.sum(amount_value), 0.0).label("amount_sum"),
            func.coalesce(func.sum(amount_value * amount_value), 0.0).label("amount_sumsq"),
        )
        .select_from(source_table)
        .where(*conditions)
        .group_by(*keys)
    )


def _flag(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("1", "t", "true", "y", "yes")
    return bool(value)


def to_cells(rows: Any, manifest: ModelManifest) -> list[DecisionCell]:
    """Result rows as cells of the two arms (versions of a side merged), keyed as the
    manifest keys groups and strata (``group_of`` / ``stratum_of``)."""
    attributes = manifest.protected_attributes
    merged: dict[tuple[Side, str, str, bool, bool | None], list[float]] = {}
    for row in rows:
        values: Mapping[str, Any] = row._mapping
        side = Side.CANDIDATE if values["served_by"] == Serving.CANDIDATE.value else Side.STABLE
        groups = {a: values[f"g{i}"] for i, a in enumerate(attributes)}
        group = manifest.group_of(groups)
        stratum = "|".join(str(values[f"s{i}"]) for i in range(len(manifest.strata)))
        decision = _flag(values["decision"])
        key = (
            side,
            group,
            stratum,
            True if decision is None else decision,
            _flag(values["outcome"]),
        )
        total = merged.setdefault(key, [0, 0.0, 0.0])
        total[0] += values["n"]
        total[1] += float(values["amount_sum"])
        total[2] += float(values["amount_sumsq"])
    return [
        DecisionCell(
            side=side,
            group=group,
            stratum=stratum,
            approved=approved,
            outcome=outcome,
            count=int(count),
            amount_sum=amount_sum,
            amount_sumsq=max(0.0, amount_sumsq),
        )
        for (side, group, stratum, approved, outcome), (count, amount_sum, amount_sumsq) in (
            merged.items()
        )
        if count >= 1
    ]


class SqlDecisionsProvider:
    """One model's decisions in a declared database; implements ``MetricsProvider``."""

    name = "sql"

    def __init__(self, engine: Engine, manifest: ModelManifest) -> None:
        if manifest.decisions.kind != "sql":
            raise ValueError(f"model {manifest.id!r} does not read its decisions from SQL")
        self._engine = engine
        self._manifest = manifest

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._engine.url!r}, model={self._manifest.id!r})"

    async def window(
        self,
        router: RouterRef,
        model: str,
        candidate_version: str,
        since: datetime,
        until: datetime,
    ) -> DecisionWindow:
        """Decisions of ``model`` with ``since <= at < until``, aggregated by the database."""
        if model != self._manifest.id:
            raise ValueError(f"this provider reads model {self._manifest.id!r}, not {model!r}")
        source = self._manifest.decisions
        query = window_query(self._manifest, source, candidate_version, since, until)
        try:
            cells = await asyncio.to_thread(self._cells, query)
        except (DBAPIError, SQLAlchemyError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:500]
            raise ProviderError(
                f"database {source.database!r} could not summarise {source.table!r} for model "
                f"{model!r}: {type(exc).__name__}: {reason}"
            ) from exc
        return DecisionWindow(
            model=model,
            candidate_version=candidate_version,
            since=since,
            until=until,
            provider=self.name,
            cells=cells,
        )

    def _cells(self, query: Any) -> list[DecisionCell]:
        with self._engine.connect() as connection:
            return to_cells(connection.execute(query), self._manifest)

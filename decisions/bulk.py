"""Many rows through one compiled statement, at the driver's speed.

SQLAlchemy's ``execute(statement, rows)`` processes every parameter of every row in
Python before the driver sees it, which at a thousand decisions a batch costs more
than the database's own work. Here a statement is compiled once per dialect (still
a SQLAlchemy construct: identifiers quoted by the dialect, never formatted in), each
column's bind processor is looked up once, and the rows go to the driver's
``executemany`` as plain tuples or dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.sql import Executable


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    positional: bool
    processors: tuple[Callable[[Any], Any] | None, ...]


_COMPILED: dict[tuple[str, str], _Compiled] = {}


def _compiled(
    connection: Connection,
    key: str,
    build: Callable[[], Executable],
    table: Table,
    columns: Sequence[str],
) -> _Compiled:
    dialect = connection.dialect
    found = _COMPILED.get((dialect.name, key))
    if found is None:
        compiled = build().compile(dialect=dialect, column_keys=list(columns))  # type: ignore[attr-defined]
        names = tuple(compiled.positiontup if compiled.positional else compiled.params)
        processors = tuple(
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )
        found = _Compiled(compiled.string, names, compiled.positional, processors)
        _COMPILED[(dialect.name, key)] = found
    return found


def executemany(
    connection: Connection,
    key: str,
    build: Callable[[], Executable],
    table: Table,
    rows: Sequence[dict[str, Any]],
) -> int:
    """Run the statement ``build()`` makes (cached under ``key``) once per row of ``rows``.

    Every row has the same keys: the columns of ``table`` the statement binds. Returns
    the rows the driver says it changed in all (-1 where it cannot tell).
    """
    if not rows:
        return 0
    compiled = _compiled(connection, key, build, table, list(rows[0]))
    # Column by column: a processor is looked up once per column, not once per value.
    columns: list[Sequence[Any]] = []
    for name, process in zip(compiled.names, compiled.processors, strict=True):
        values = [row[name] for row in rows]
        columns.append([process(v) for v in values] if process else values)
    params: list[Any] = list(zip(*columns, strict=True))
    if not compiled.positional:
        params = [dict(zip(compiled.names, values, strict=True)) for values in params]
    rowcount: int = connection.exec_driver_sql(compiled.sql, params).rowcount
    return rowcount

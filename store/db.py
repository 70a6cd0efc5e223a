"""Engines for Fairlane's own tables: SQLite by default, Postgres when configured.

SQLite is opened in WAL mode with a busy timeout so the worker, the API and the CLI
can share one file; Postgres URLs are pointed at the psycopg 3 driver.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel, create_engine

from store.files import private_sqlite


def normalise_url(url: str) -> str:
    """Accept the usual ``postgres://`` / ``postgresql://`` spellings for psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not path.startswith("file:"):
            private_sqlite(Path(path))  # 0600, and so its WAL and SHM
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


CREATE_ATTEMPTS = 5


def create_tables(engine: Engine, tables: Sequence[Table] | None = None) -> None:
    """Create ``tables`` (default: every table on SQLModel's metadata) that are missing.

    Idempotent, and safe when several processes start on one fresh database at once
    (the embedded stack starts two workers and the API together): ``create_all``
    checks, then creates, and another process may create the table in between. That
    loser gets "already exists" (SQLite, Postgres) or a unique violation on the
    catalogue (Postgres), and simply checks again: the table is there now.
    """
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            SQLModel.metadata.create_all(engine, tables=tables)
            return
        except DBAPIError:
            if attempt == CREATE_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"

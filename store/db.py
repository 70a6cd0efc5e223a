"""Engines for Fairlane's own tables: SQLite by default, Postgres when configured.

SQLite is opened in WAL mode with a busy timeout so the worker, the API and the CLI
can share one file; Postgres URLs are pointed at the psycopg 3 driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
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


def create_tables(engine: Engine) -> None:
    """Create every table registered on SQLModel's metadata (idempotent)."""
    SQLModel.metadata.create_all(engine)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"

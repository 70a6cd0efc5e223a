"""Engines for Fairlane's own tables: SQLite by default, Postgres when configured.

SQLite is opened in WAL mode with a busy timeout so the worker, the API and the CLI
can share one file; Postgres URLs are pointed at the psycopg 3 driver.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


@contextmanager
def write_turn(engine: Engine) -> Iterator[None]:
    """Wait for this SQLite file's write turn in the kernel, then hold it (a no-op elsewhere).

    Why: SQLite lets one writer in at a time, and a writer that finds the lock taken
    polls for it in its busy handler, sleeping up to 100 ms between tries. Under load
    the pollers starve: with three processes appending batches to the audit trail, a
    fourth appending single events waited up to 4.8 s for a lock each holder kept for
    milliseconds (a containment in an alert storm waits for its trail record). An
    exclusive ``flock`` on a sidecar file queues the writers in the kernel instead, and
    wakes the next as soon as the lock is let go. Every process that takes its turn here
    serialises on the same file; a writer that does not still meets SQLite's own lock.
    """
    path = sqlite_file(engine)
    if path is None:
        yield
        return
    fd = os.open(f"{path}.write-turn", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and so the lock


def sqlite_file(engine: Engine) -> str | None:
    """The file of a SQLite database on disk; None for Postgres or an in-memory one."""
    if not is_sqlite(engine):
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"

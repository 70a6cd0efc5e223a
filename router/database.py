"""The router's own database: an engine for SQLite (the default) or Postgres, with its tables.

The app is async but the decision path is synchronous work (model scoring, one
short transaction) that FastAPI runs in its thread pool, so SQLite is opened for
use across threads and in WAL mode: readers never wait for the decision writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel, create_engine

from decisions.tables import create_decision_tables
from router.deployments import ArtifactPinRow, DeploymentRow
from router.route_table import RouteRow
from store.db import create_tables
from store.files import private_sqlite


def _tune_sqlite(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # A window summary sorts up to millions of rows for its GROUP BY; a helper thread
    # takes about a quarter off that on two cores. Nothing else the router runs sorts.
    cursor.execute("PRAGMA threads=2")
    cursor.close()


def create_router_engine(url: str) -> Engine:
    """An engine for ``url``, with the router's tables created if they are not there yet."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        in_memory = database in ("", ":memory:")
        if not in_memory:
            private_sqlite(Path(database))  # 0600, and so its WAL and SHM
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 30},
            # One shared connection, or every thread would see its own empty database.
            poolclass=StaticPool if in_memory else None,
        )
        if not in_memory:
            event.listen(engine, "connect", _tune_sqlite)
    else:
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is what we ship
        engine = create_engine(parsed, pool_pre_ping=True)

    tables = [
        SQLModel.metadata.tables[row.__tablename__]
        for row in (RouteRow, DeploymentRow, ArtifactPinRow)
    ]
    create_tables(engine, tables)
    create_decision_tables(engine)
    return engine

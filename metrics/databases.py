"""Engines for the databases operators declared as decision sources, opened once each.

A manifest names a database by id; this is the only place an id becomes a connection,
and the password (kept apart from the URL, :mod:`config.databases`) goes only into the
engine. Engines print their URL with the password masked.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine, create_engine

from config.databases import DecisionDatabase


class UnknownDatabase(LookupError):
    """A decision source naming a database no operator declared."""


class DecisionDatabases:
    """The declared decision databases, id -> a lazily opened, shared engine."""

    def __init__(self, declared: dict[str, DecisionDatabase]) -> None:
        self._declared = dict(declared)
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    @property
    def ids(self) -> list[str]:
        return sorted(self._declared)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ids={self.ids})"

    def engine(self, database_id: str) -> Engine:
        """The engine of the declared database ``database_id``; :class:`UnknownDatabase` else."""
        declared = self._declared.get(database_id)
        if declared is None:
            raise UnknownDatabase(
                f"decision database {database_id!r} is not declared on this worker "
                f"(declared: {', '.join(self.ids) or 'none'}; FAIRLANE_DECISION_DATABASES)"
            )
        with self._lock:
            engine = self._engines.get(database_id)
            if engine is None:
                url = declared.resolved_url()
                if url.drivername in ("postgresql", "postgres"):
                    url = url.set(drivername="postgresql+psycopg")  # psycopg 3 is what we ship
                engine = create_engine(url, pool_pre_ping=True)
                self._engines[database_id] = engine
            return engine

    def dispose(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

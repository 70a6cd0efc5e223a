"""Processes that start together on one fresh database all get their tables.

The embedded stack starts the API and two workers at once; each creates the tables it
needs. ``create_all`` checks and then creates, so two of them can both see a table
missing and the second CREATE fails with "already exists": a worker that exits at
start-up on a race it should have shrugged off.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlmodel import SQLModel

from store.db import create_tables, make_engine

STARTERS = 6
ROUNDS = 8


def _start(url: str, go: Event) -> None:
    import audit.trail  # noqa: F401  (registers the tables, as a process does)
    import registry.service  # noqa: F401

    engine = make_engine(url)
    go.wait()
    create_tables(engine)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_processes_starting_together_on_a_fresh_database_all_start(
    tmp_path: Path, round_: int
) -> None:
    url = f"sqlite:///{tmp_path / 'fairlane.db'}"
    context = multiprocessing.get_context("fork")
    go = context.Event()
    starters = [context.Process(target=_start, args=(url, go)) for _ in range(STARTERS)]
    for starter in starters:
        starter.start()
    go.set()
    for starter in starters:
        starter.join(timeout=60)
    assert [s.exitcode for s in starters] == [0] * STARTERS
    import audit.trail  # noqa: F401
    import registry.service  # noqa: F401

    created = set(inspect(make_engine(url)).get_table_names())
    assert set(SQLModel.metadata.tables) <= created

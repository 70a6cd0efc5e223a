"""Several processes on one SQLite file: they all get their tables, and writers take turns.

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


def _hold_turn(url: str, held: Event, release: Event) -> None:
    from store.db import write_turn

    with write_turn(make_engine(url)):
        held.set()
        release.wait(30)


def test_a_write_turn_is_one_process_at_a_time_and_private(tmp_path: Path) -> None:
    """Writers queue for a SQLite file's write turn in the kernel (``store.db.write_turn``):
    while one process holds it no other gets it, and the next gets it once it is let go.
    The sidecar lock file is private, like the database."""
    from store.db import write_turn

    url = f"sqlite:///{tmp_path / 'fairlane.db'}"
    context = multiprocessing.get_context("fork")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_turn, args=(url, held, release))
    holder.start()
    assert held.wait(30)
    import fcntl

    lock = tmp_path / "fairlane.db.write-turn"
    with lock.open("rb") as probe:
        with pytest.raises(BlockingIOError):  # the holder has it
            fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        release.set()
        holder.join(30)
        fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # let go with the process
        fcntl.flock(probe.fileno(), fcntl.LOCK_UN)
    with write_turn(make_engine(url)):
        pass
    assert lock.stat().st_mode & 0o777 == 0o600


def _read_secret(data_dir: str, go: Event, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from config import Settings
    from console.sessions import session_secret

    settings = Settings(data_dir=Path(data_dir))
    go.wait()
    out.put(session_secret(settings))


@pytest.mark.parametrize("round_", range(4))
def test_processes_starting_together_share_one_console_session_secret(
    tmp_path: Path, round_: int
) -> None:
    """Each API process signs console cookies with the data dir's session secret, made on
    first start. Made by replacing the file, processes starting together each kept their
    own, and a cookie signed by one was refused by the other (a sign-out every other
    request behind a load balancer). The first one made is everyone's."""
    context = multiprocessing.get_context("fork")
    go, out = context.Event(), context.Queue()
    readers = [
        context.Process(target=_read_secret, args=(str(tmp_path), go, out)) for _ in range(6)
    ]
    for reader in readers:
        reader.start()
    go.set()
    secrets = {out.get(timeout=60) for _ in readers}
    for reader in readers:
        reader.join(timeout=60)
    assert len(secrets) == 1
    assert not list(tmp_path.rglob("*.partial"))

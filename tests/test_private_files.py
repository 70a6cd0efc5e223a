"""Data files are the owner's alone: Temporal's and Fairlane's databases (and their WAL
and SHM), the router's, tokens, keys and logs are mode 0600 under a 0700 data directory,
whatever the umask of whoever started Fairlane."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from api.tokens import Role, issue_token
from config import Settings
from incidents.decisions import DecisionSigner
from router.database import create_router_engine
from stack.loopback import free_port
from stack.supervisor import EmbeddedStack, _wait_tcp, ensure_router_token
from store.db import create_tables, make_engine


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _permissive_umask() -> Iterator[None]:
    """The usual 022: without Fairlane's care, every file it creates is world-readable."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _sqlite_files(db: Path) -> list[Path]:
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    assert all(f.exists() for f in files), [f.name for f in files if not f.exists()]
    return files


def test_fairlane_and_router_databases_are_owner_only(tmp_path: Path) -> None:
    old = tmp_path / "fairlane.db"
    old.touch(mode=0o644)  # left by an older version
    engine = make_engine(f"sqlite:///{old}")
    create_tables(engine)
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS t (x TEXT)"))
        connection.execute(text("INSERT INTO t VALUES ('sign-off comment')"))
        connection.commit()
        assert {f.name: _mode(f) for f in _sqlite_files(old)} == {
            f.name: 0o600 for f in _sqlite_files(old)
        }
    engine.dispose()

    router_db = tmp_path / "router" / "router.db"
    router = create_router_engine(f"sqlite:///{router_db}")
    with router.connect() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS t (x TEXT)"))
        connection.execute(text("INSERT INTO t VALUES ('decision')"))
        connection.commit()
        assert all(_mode(f) == 0o600 for f in _sqlite_files(router_db))
    router.dispose()


def test_tokens_and_keys_are_owner_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    issue_token(settings.resolved_tokens_file, "alice", [Role.LEGAL])
    assert _mode(settings.resolved_tokens_file) == 0o600
    ensure_router_token(settings)
    assert _mode(tmp_path / "router-token") == 0o600
    DecisionSigner.from_settings(settings)
    assert _mode(settings.resolved_decision_signing_key_file) == 0o600


async def test_the_embedded_temporal_database_is_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "fairlane.db").touch(mode=0o644)  # left by an older version
    port = free_port()
    settings = Settings(
        data_dir=data,
        temporal_address=f"127.0.0.1:{port}",
        temporal_ui_port=free_port(),
    )
    stack = EmbeddedStack(settings)
    stack.make_data_private()
    try:
        stack._spawn("temporal", stack._temporal_command(), dict(os.environ))
        await _wait_tcp(settings.temporal_address, "Temporal dev server", 60)
        db = settings.temporal_db_file
        for _ in range(100):  # the server writes its namespace at boot
            if all(db.with_name(db.name + s).exists() for s in ("-wal", "-shm")):
                break
            await asyncio.sleep(0.1)
        modes = {f.name: _mode(f) for f in _sqlite_files(db)}
        assert modes == {name: 0o600 for name in modes}, modes
        assert _mode(data) == 0o700
        assert _mode(data / "fairlane.db") == 0o600
        assert _mode(data / "logs" / "temporal.log") == 0o600
    finally:
        stack.stop()


async def _ui_settings(port: int) -> dict[str, object] | None:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            answer = await client.get(f"http://127.0.0.1:{port}/api/v1/settings")
    except httpx.TransportError:
        return None
    settings: dict[str, object] = answer.json()
    return settings


@pytest.mark.parametrize("ui", [False, True], ids=["default", "ui-on"])
async def test_the_embedded_web_ui_is_off_unless_asked_for(tmp_path: Path, ui: bool) -> None:
    """The dev server's UI cannot be made read-only: it offers terminate, reset and signal
    with no credential (its settings say so). So it does not run unless turned on."""
    settings = Settings(
        data_dir=tmp_path,
        temporal_address=f"127.0.0.1:{free_port()}",
        temporal_ui_port=free_port(),
        temporal_ui=ui,
    )
    stack = EmbeddedStack(settings)
    stack.make_data_private()
    try:
        stack._spawn("temporal", stack._temporal_command(), dict(os.environ))
        await _wait_tcp(settings.temporal_address, "Temporal dev server", 60)
        answer = None
        for _ in range(50 if ui else 10):
            answer = await _ui_settings(settings.temporal_ui_port)
            if answer is not None:
                break
            await asyncio.sleep(0.2)
        if not ui:
            assert answer is None, "the Web UI is served by default"
        else:
            assert answer is not None
            # Why it is off by default: write actions cannot be disabled on the dev server.
            assert answer["DisableWriteActions"] is False
            assert answer["WorkflowTerminateDisabled"] is False
    finally:
        stack.stop()

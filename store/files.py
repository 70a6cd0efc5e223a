"""Files only their owner may read: databases, keys, tokens, logs under the data directory.

Sign-off comments, principal names and summaries live in Temporal's and Fairlane's
SQLite files; tokens and keys beside them. None of them is for the other users of the
machine, so every file Fairlane creates there is mode 0600 (directories 0700), created
that way (never world-readable for an instant) and tightened if an older version left
it wider.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
PRIVATE_UMASK = 0o077
"""The umask the embedded stack's children run under: what they create is theirs alone."""
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (created if missing)."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    _tighten(path, PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """``path`` as an existing file readable by its owner alone (created empty if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
    os.close(fd)
    _tighten(path, PRIVATE_FILE)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (replacing it atomically), mode 0600 from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


def create_private_once(path: Path, content: bytes) -> bool:
    """Create ``path`` holding ``content`` (0600) unless it exists; whether this call made it.

    For a secret each process makes on first start (a signing key, the console's session
    secret): processes starting together each write their own candidate and hard-link it
    into place, which fails for all but the first, so every process reads the same file.
    A replace would let the last writer win after the others had read theirs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(partial, path)
    except FileExistsError:
        return False
    finally:
        partial.unlink()
    return True


def private_sqlite(path: Path) -> None:
    """A SQLite database file and its WAL/SHM/journal, owner-only.

    SQLite creates its side files with the database file's permissions, so creating the
    database 0600 first keeps them 0600 too; existing ones are tightened.
    """
    private_file(path)
    tighten_sqlite(path)


def tighten_sqlite(path: Path) -> None:
    """Whichever of a SQLite database's files exist, owner-only; creates none of them
    (a server that sets up its own schema takes an empty file for an initialised one)."""
    for suffix in ("", *SQLITE_SIDE_FILES):
        side = path.with_name(path.name + suffix)
        if side.exists():
            _tighten(side, PRIVATE_FILE)


def _tighten(path: Path, mode: int) -> None:
    if path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)

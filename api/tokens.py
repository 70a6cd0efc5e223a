"""Bearer tokens mapped to principals and roles, kept hashed in a tokens file.

Tokens are 256-bit random strings, so a plain SHA-256 of the token is enough to
store them safely (no dictionary to attack); the plaintext is shown once, when it
is issued, and never stored or logged. The file is re-read when it changes, so a
newly issued token works without restarting the API, and a token expired or revoked
(``api/token_admin.py``) stops working at once. Each token has a public id (``tok_…``;
older entries get one from their hash) by which it is listed, expired and revoked.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from store.files import write_private


class Role(StrEnum):
    INCIDENT_COMMANDER = "incident_commander"
    LEGAL = "legal"
    COMPLIANCE = "compliance"
    EXECUTIVE = "executive"
    COMMUNICATIONS = "communications"
    DATA_SCIENCE_LEAD = "data_science_lead"
    AUDITOR = "auditor"
    ALERT_SOURCE = "alert_source"
    TRAINING_PIPELINE = "training_pipeline"
    DECISION_REPORTER = "decision_reporter"  # a service reporting its decisions and outcomes
    ADMIN = "admin"


APPROVER_ROLES = frozenset(
    {Role.LEGAL, Role.COMPLIANCE, Role.EXECUTIVE, Role.COMMUNICATIONS, Role.DATA_SCIENCE_LEAD}
)


class Principal(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    roles: list[Role] = Field(min_length=1)

    def holds(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)


class TokenEntry(Principal):
    """A principal's token as stored: its hash, never the token; when and by whom it was
    issued, until when it works, and whether it was revoked (fields absent in files
    written before tokens could expire mean: never expires, not revoked)."""

    token_sha256: str
    id: str | None = None
    issued_at: datetime | None = None
    issued_by: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def token_id(self) -> str:
        return self.id or f"tok_{self.token_sha256[:12]}"

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class _TokensFile(BaseModel):
    principals: list[TokenEntry] = Field(default_factory=list)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    path: Path,
    name: str,
    roles: list[Role],
    *,
    issued_by: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Add a principal with a fresh token to the file; returns the plaintext, once."""
    return issue_token_entry(path, name, roles, issued_by=issued_by, expires_at=expires_at)[0]


def issue_token_entry(
    path: Path,
    name: str,
    roles: list[Role],
    *,
    issued_by: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, TokenEntry]:
    """:func:`issue_token`, also returning the stored entry (its id, never the token)."""
    token = "fl_" + secrets.token_urlsafe(32)
    entry = TokenEntry(
        name=name,
        roles=roles,
        token_sha256=hash_token(token),
        id="tok_" + secrets.token_hex(8),
        issued_at=datetime.now(UTC),
        issued_by=issued_by,
        expires_at=expires_at,
    )
    with _locked(path):
        data = _load(path)
        data.principals.append(entry)
        write_private(path, data.model_dump_json(indent=2))
    return token, entry


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer of the tokens file at a time, across processes (API, CLI)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def list_entries(path: Path) -> list[TokenEntry]:
    return _load(path).principals


def change_entry(
    path: Path, token_id: str, change: Callable[[TokenEntry], None]
) -> TokenEntry | None:
    """Apply ``change`` to the entry with ``token_id`` and save; None if there is none."""
    with _locked(path):
        data = _load(path)
        found = next((e for e in data.principals if e.token_id == token_id), None)
        if found is None:
            return None
        change(found)
        write_private(path, data.model_dump_json(indent=2))
        return found


def restore(path: Path, entries: list[TokenEntry]) -> None:
    """Put the file back as it was (a change whose audit record could not be written)."""
    with _locked(path):
        write_private(path, _TokensFile(principals=entries).model_dump_json(indent=2))


def _load(path: Path) -> _TokensFile:
    if not path.exists():
        return _TokensFile()
    return _TokensFile.model_validate(json.loads(path.read_text()))


class TokenStore:
    """Looks principals up by token; reloads the file when it changes.

    Every write replaces the file (a new inode), so comparing inode, nanosecond mtime and
    size sees a revocation made a moment after the previous write."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime: tuple[int, int, int] | None = None
        self._by_hash: dict[str, TokenEntry] = {}

    def principal_for(self, token: str) -> Principal | None:
        """The token's principal, or None if the token is unknown, expired or revoked."""
        self._reload_if_changed()
        entry = self._by_hash.get(hash_token(token))
        if entry is None or not entry.usable(datetime.now(UTC)):
            return None
        return Principal(name=entry.name, roles=entry.roles)

    def _reload_if_changed(self) -> None:
        try:
            stat = self._path.stat()
            mtime = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            self._by_hash, self._mtime = {}, None
            return
        if mtime != self._mtime:
            entries = _load(self._path).principals
            self._by_hash = {e.token_sha256: e for e in entries}
            self._mtime = mtime

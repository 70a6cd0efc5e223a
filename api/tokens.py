"""Bearer tokens mapped to principals and roles, kept hashed in a tokens file.

Tokens are 256-bit random strings, so a plain SHA-256 of the token is enough to
store them safely (no dictionary to attack); the plaintext is shown once, when it
is issued, and never stored or logged. The file is re-read when it changes, so a
newly issued token works without restarting the API.
"""

from __future__ import annotations

import hashlib
import json
import secrets
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


class _Entry(Principal):
    token_sha256: str


class _TokensFile(BaseModel):
    principals: list[_Entry] = Field(default_factory=list)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(path: Path, name: str, roles: list[Role]) -> str:
    """Add a principal with a fresh token to the file; returns the plaintext, once."""
    token = "fl_" + secrets.token_urlsafe(32)
    data = _load(path)
    data.principals.append(_Entry(name=name, roles=roles, token_sha256=hash_token(token)))
    write_private(path, data.model_dump_json(indent=2))
    return token


def _load(path: Path) -> _TokensFile:
    if not path.exists():
        return _TokensFile()
    return _TokensFile.model_validate(json.loads(path.read_text()))


class TokenStore:
    """Looks principals up by token; reloads the file when its modification time changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime: float | None = None
        self._by_hash: dict[str, Principal] = {}

    def principal_for(self, token: str) -> Principal | None:
        self._reload_if_changed()
        return self._by_hash.get(hash_token(token))

    def _reload_if_changed(self) -> None:
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            self._by_hash, self._mtime = {}, None
            return
        if mtime != self._mtime:
            entries = _load(self._path).principals
            self._by_hash = {e.token_sha256: Principal(name=e.name, roles=e.roles) for e in entries}
            self._mtime = mtime

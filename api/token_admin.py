"""Machine principals' bearer tokens over HTTP: issue, list, expire, revoke (admin only).

Alert sources, training pipelines and the CLI authenticate with bearer tokens; people
use the console's single sign-on. Every change is on the audit trail (who, which token
id, for whom, with which roles, until when, and why), never the token or its hash; a
change whose record cannot be written is undone, so nothing is half-applied.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field, field_validator

from api.deps import SettingsDep, TrailDep
from api.security import require
from api.tokens import (
    Principal,
    Role,
    TokenEntry,
    change_entry,
    issue_token_entry,
    list_entries,
    restore,
)
from audit.trail import AuditTrail
from contracts.audit import AuditEvent

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])
ID_PATTERN = r"^tok_[0-9a-f]{12,16}$"  # a public id, not a secret
TOKENS_TRAIL = "tokens"  # the trail's stream for token changes (no incident)
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
TokenId = Annotated[str, Path(pattern=ID_PATTERN)]


class IssueToken(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._@-]+$")
    roles: list[Role] = Field(min_length=1)
    expires_in_days: int | None = Field(
        default=90, ge=1, le=3650, description="null: never expires (not recommended)"
    )
    reason: str = Field(min_length=1, max_length=2000)


class ExpireToken(BaseModel):
    expires_at: datetime | None = Field(
        default=None, description="when it stops working; now when omitted"
    )
    reason: str = Field(min_length=1, max_length=2000)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2027-01-01T00:00:00Z)")
        return value


class RevokeToken(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class TokenInfo(BaseModel):
    id: str
    name: str
    roles: list[Role]
    issued_at: datetime | None
    issued_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    status: str


class IssuedToken(TokenInfo):
    token: str = Field(description="shown once: it is stored only hashed")


def _info(entry: TokenEntry) -> TokenInfo:
    now = datetime.now(UTC)
    state = (
        "revoked"
        if entry.revoked_at
        else "expired"
        if entry.expires_at is not None and now >= entry.expires_at
        else "active"
    )
    return TokenInfo(
        id=entry.token_id,
        name=entry.name,
        roles=entry.roles,
        issued_at=entry.issued_at,
        issued_by=entry.issued_by,
        expires_at=entry.expires_at,
        revoked_at=entry.revoked_at,
        revoked_by=entry.revoked_by,
        status=state,
    )


def _record(trail: AuditTrail, kind: str, actor: Principal, info: TokenInfo, reason: str) -> None:
    trail.append(
        AuditEvent(
            event_id=f"{kind}:{info.id}:{uuid.uuid4().hex}",
            incident_id=TOKENS_TRAIL,
            kind=kind,
            actor=actor.name,
            detail={
                "token_id": info.id,
                "name": info.name,
                "roles": [r.value for r in info.roles],
                "expires_at": info.expires_at.isoformat() if info.expires_at else None,
                "reason": reason,
            },
        )
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=IssuedToken)
def issue(body: IssueToken, settings: SettingsDep, trail: TrailDep, admin: Admin) -> IssuedToken:
    path = settings.resolved_tokens_file
    before = list_entries(path)
    expires = (
        datetime.now(UTC) + timedelta(days=body.expires_in_days)
        if body.expires_in_days is not None
        else None
    )
    token, entry = issue_token_entry(
        path, body.name, body.roles, issued_by=admin.name, expires_at=expires
    )
    info = _info(entry)
    _recorded_or_undone(trail, path, before, "token.issued", admin, info, body.reason)
    return IssuedToken(**info.model_dump(), token=token)


@router.get("", response_model=list[TokenInfo])
def list_tokens(settings: SettingsDep, _: Admin) -> list[TokenInfo]:
    return [_info(entry) for entry in list_entries(settings.resolved_tokens_file)]


@router.post("/{token_id}/expire", response_model=TokenInfo)
def expire(
    token_id: TokenId, body: ExpireToken, settings: SettingsDep, trail: TrailDep, admin: Admin
) -> TokenInfo:
    when = body.expires_at or datetime.now(UTC)
    return _change(
        settings.resolved_tokens_file,
        trail,
        token_id,
        admin,
        "token.expiry_set",
        body.reason,
        expires_at=when,
    )


@router.post("/{token_id}/revoke", response_model=TokenInfo)
def revoke(
    token_id: TokenId, body: RevokeToken, settings: SettingsDep, trail: TrailDep, admin: Admin
) -> TokenInfo:
    return _change(
        settings.resolved_tokens_file,
        trail,
        token_id,
        admin,
        "token.revoked",
        body.reason,
        revoke=True,
    )


def _change(
    path: FilePath,
    trail: AuditTrail,
    token_id: str,
    admin: Principal,
    kind: str,
    reason: str,
    expires_at: datetime | None = None,
    revoke: bool = False,
) -> TokenInfo:
    before = list_entries(path)
    current = next((e for e in before if e.token_id == token_id), None)
    if current is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id!r}")
    if current.revoked_at is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"token {token_id} is already revoked")

    def apply(entry: TokenEntry) -> None:
        if revoke:
            entry.revoked_at, entry.revoked_by = datetime.now(UTC), admin.name
        if expires_at is not None:
            entry.expires_at = expires_at

    changed = change_entry(path, token_id, apply)
    if changed is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id!r}")
    info = _info(changed)
    _recorded_or_undone(trail, path, before, kind, admin, info, reason)
    return info


def _recorded_or_undone(
    trail: AuditTrail,
    path: FilePath,
    before: list[TokenEntry],
    kind: str,
    admin: Principal,
    info: TokenInfo,
    reason: str,
) -> None:
    try:
        _record(trail, kind, admin, info, reason)
    except Exception:
        restore(path, before)
        raise

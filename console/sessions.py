"""Console sessions: a signed cookie naming a session the server keeps.

The cookie holds only a random session id, signed (itsdangerous, HMAC-SHA256) with a
secret the server holds; the session itself (who, which roles, its CSRF token, when it
began and was last used, whether it ended) is a row in Fairlane's database, stored under
the id's hash. So a forged cookie fails its signature, a copied cookie stops working
the moment its session is signed out (a replay finds the session ended), and idle and
absolute timeouts are enforced here, not trusted to the browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel

from api.tokens import Principal, Role
from config import Settings
from store.files import create_private_once

SESSION_COOKIE = "fairlane_session"
SIGNIN_COOKIE = "fairlane_signin"
SIGNIN_MAX_AGE_S = 600


class ConsoleSessionRow(SQLModel, table=True):
    __tablename__ = "console_sessions"

    id_sha256: str = Field(primary_key=True, max_length=64)
    principal: str = Field(max_length=200)
    roles: str  # JSON list of role names
    csrf_token: str = Field(max_length=100)
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None = None


class SessionProblem(StrEnum):
    """Why a cookie did not open a session; the text is what the person is shown."""

    NONE = "you are not signed in"
    FORGED = (
        "your session cookie was not issued by Fairlane (its signature is wrong); sign in again"
    )
    UNKNOWN = "your session is not known to Fairlane; sign in again"
    ENDED = "this session was signed out; its cookie no longer works. Sign in again"
    IDLE = "your session expired after a period without activity; sign in again"
    ABSOLUTE = "your session reached its maximum length; sign in again"


class ConsoleSession(BaseModel):
    principal: Principal
    csrf_token: str
    started_at: datetime


class SessionLookup(BaseModel):
    session: ConsoleSession | None = None
    problem: SessionProblem | None = None


def session_secret(settings: Settings) -> str:
    """The configured secret, or the one in the data dir's key file (made once, 0600)."""
    if settings.console_session_secret is not None:
        return settings.console_session_secret.get_secret_value()
    path = settings.resolved_console_session_secret_file
    if not path.exists():  # processes starting together all end up with the first one's
        create_private_once(path, base64.urlsafe_b64encode(secrets.token_bytes(32)))
    return path.read_text().strip()


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Opens, finds and ends console sessions; signs and reads their cookies."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        secret = session_secret(settings)
        self._engine = engine
        self._cookie = URLSafeSerializer(secret, salt="fairlane-console-session")
        self._signin = URLSafeTimedSerializer(secret, salt="fairlane-console-signin")
        self._idle = timedelta(seconds=settings.console_idle_timeout_s)
        self._absolute = timedelta(seconds=settings.console_absolute_timeout_s)
        self.secure = settings.resolved_console_url.startswith("https://")

    # The short-lived cookie that carries a sign-in in progress (state, nonce, verifier).
    def sign_pending(self, payload: dict[str, object]) -> str:
        return self._signin.dumps(payload)

    def read_pending(self, cookie: str | None) -> dict[str, object] | None:
        if not cookie:
            return None
        try:
            value = self._signin.loads(cookie, max_age=SIGNIN_MAX_AGE_S)
        except BadSignature:
            return None
        return value if isinstance(value, dict) else None

    def open(self, principal: Principal) -> tuple[str, ConsoleSession]:
        """A new session for ``principal``; returns the cookie value and the session."""
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        row = ConsoleSessionRow(
            id_sha256=_hash(session_id),
            principal=principal.name,
            roles=json.dumps([r.value for r in principal.roles]),
            csrf_token=secrets.token_urlsafe(32),
            started_at=now,
            last_seen_at=now,
        )
        with Session(self._engine, expire_on_commit=False) as db:
            db.add(row)
            db.commit()
        session = ConsoleSession(principal=principal, csrf_token=row.csrf_token, started_at=now)
        return self._cookie.dumps(session_id), session

    def find(self, cookie: str | None) -> SessionLookup:
        """The live session a cookie names (touching its idle clock), or why there is none."""
        if not cookie:
            return SessionLookup(problem=SessionProblem.NONE)
        try:
            session_id = self._cookie.loads(cookie)
        except BadSignature:
            return SessionLookup(problem=SessionProblem.FORGED)
        if not isinstance(session_id, str):
            return SessionLookup(problem=SessionProblem.FORGED)
        now = datetime.now(UTC)
        with Session(self._engine, expire_on_commit=False) as db:
            row = db.get(ConsoleSessionRow, _hash(session_id))
            if row is None:
                return SessionLookup(problem=SessionProblem.UNKNOWN)
            if row.ended_at is not None:
                return SessionLookup(problem=SessionProblem.ENDED)
            started, seen = _aware(row.started_at), _aware(row.last_seen_at)
            problem = None
            if now - started > self._absolute:
                problem = SessionProblem.ABSOLUTE
            elif now - seen > self._idle:
                problem = SessionProblem.IDLE
            if problem is not None:
                row.ended_at = now
                db.add(row)
                db.commit()
                return SessionLookup(problem=problem)
            row.last_seen_at = now
            db.add(row)
            db.commit()
            principal = Principal(
                name=row.principal, roles=[Role(r) for r in json.loads(row.roles)]
            )
            return SessionLookup(
                session=ConsoleSession(
                    principal=principal, csrf_token=row.csrf_token, started_at=started
                )
            )

    def end(self, cookie: str | None) -> None:
        """Sign out: the session ends for good, so its cookie can never be replayed."""
        if not cookie:
            return
        try:
            session_id = self._cookie.loads(cookie)
        except BadSignature:
            return
        with Session(self._engine, expire_on_commit=False) as db:
            row = db.get(ConsoleSessionRow, _hash(str(session_id)))
            if row is not None and row.ended_at is None:
                row.ended_at = datetime.now(UTC)
                db.add(row)
                db.commit()


def csrf_matches(session: ConsoleSession, submitted: str | None) -> bool:
    return bool(submitted) and secrets.compare_digest(session.csrf_token, str(submitted))


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

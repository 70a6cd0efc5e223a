"""Each signed alert delivery is accepted once: a table of signatures already seen.

A timestamped signature is good for a few minutes (``alerts/signature.py``); inside
that window a captured request would pass every check again. The signatures seen are
kept in Fairlane's database, not in memory, so the refusal holds across API restarts
and across several API processes behind one address. A row is needed only until its
signature's window closes, so expired rows are pruned as new ones arrive.

A delivery *claims* its signature before it is handed on and *releases* it if it is
not accepted (a bad body, Temporal unavailable), so the sender may send the same
signed request again while it is fresh, as the 503 answer promises.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, delete

from audit.records import UTCDateTime


class SeenAlertSignature(SQLModel, table=True):
    __tablename__ = "alert_signature_seen"

    signature: str = Field(primary_key=True, max_length=100)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    seen_at: datetime = Field(sa_type=UTCDateTime)


class AlertReplayed(Exception):
    """This exact signed request was already accepted (or is being handled) once."""


class ReplayCache:
    def __init__(self, engine: Engine, prune_every_s: float = 60.0) -> None:
        self._engine = engine
        self._prune_every_s = prune_every_s
        self._pruned_at = 0.0

    def claim(self, signature: str, expires_at: datetime) -> None:
        """Record ``signature`` as used; :class:`AlertReplayed` if it already is."""
        now = datetime.now(UTC)
        with Session(self._engine) as session:
            if time.monotonic() - self._pruned_at >= self._prune_every_s:
                self._pruned_at = time.monotonic()
                expired = col(SeenAlertSignature.expires_at) < now
                session.exec(delete(SeenAlertSignature).where(expired))
                session.commit()
            session.add(SeenAlertSignature(signature=signature, expires_at=expires_at, seen_at=now))
            try:
                session.commit()
            except IntegrityError:
                raise AlertReplayed(
                    "this signed request was already received: a replay (sign each delivery "
                    "with a fresh timestamp)"
                ) from None

    def release(self, signature: str) -> None:
        """Forget ``signature``: its delivery was not accepted, so it may come again."""
        with Session(self._engine) as session:
            this = col(SeenAlertSignature.signature) == signature
            session.exec(delete(SeenAlertSignature).where(this))
            session.commit()

"""Callback tokens for external training pipelines, each bound to one incident and step.

Handing a pipeline Temporal's raw task token would let anyone holding it complete the
step under any incident's URL, and the API would only learn the token was bad after
acting on it. Instead the worker issues a random secret per job and keeps, in
Fairlane's database, only its sha256 beside the incident, the step, the round and the
task token it stands for. The API redeems a secret *first*: an unknown secret, or one
issued for another incident, is refused before anything is registered or recorded,
and the task token it completes is the one stored here, never one from the URL.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel


class TrainingCallbackRow(SQLModel, table=True):
    __tablename__ = "training_callback"

    secret_sha256: str = Field(primary_key=True, max_length=64)
    incident_id: str = Field(index=True, max_length=200)
    step: str = Field(max_length=200)
    round: int
    task_token: str  # base64 of Temporal's task token for the waiting activity
    issued_at: datetime
    answered_at: datetime | None = None


@dataclass(frozen=True)
class Binding:
    """What a redeemed secret stands for."""

    incident_id: str
    step: str
    round: int
    task_token: bytes
    answered: bool


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TrainingCallbacks:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def issue(self, incident_id: str, step: str, round_: int, task_token: bytes) -> str:
        """A new secret for this job (each activity attempt gets its own)."""
        secret = secrets.token_urlsafe(32)
        with Session(self._engine) as session:
            session.add(
                TrainingCallbackRow(
                    secret_sha256=_hash(secret),
                    incident_id=incident_id,
                    step=step,
                    round=round_,
                    task_token=base64.b64encode(task_token).decode(),
                    issued_at=datetime.now(UTC),
                )
            )
            session.commit()
        return secret

    def redeem(self, secret: str, incident_id: str) -> Binding | None:
        """The job ``secret`` was issued for, if it was issued for ``incident_id``; else None.

        An unknown secret and another incident's secret look the same to the caller.
        """
        if len(secret) > 200:
            return None
        with Session(self._engine) as session:
            row = session.get(TrainingCallbackRow, _hash(secret))
        if row is None or not secrets.compare_digest(row.incident_id, incident_id):
            return None
        return Binding(
            row.incident_id,
            row.step,
            row.round,
            base64.b64decode(row.task_token),
            answered=row.answered_at is not None,
        )

    def answered(self, secret: str) -> None:
        with Session(self._engine) as session:
            row = session.get(TrainingCallbackRow, _hash(secret))
            if row is not None:
                row.answered_at = datetime.now(UTC)
                session.add(row)
                session.commit()

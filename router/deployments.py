"""Which versions of each model the router holds, persisted so a restart serves them again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel, select

from router.columns import UtcDateTime


class DeploymentRow(SQLModel, table=True):
    """A model's deployed versions, each with the artifact file it is loaded from."""

    __tablename__ = "router_deployment"

    model: str = Field(primary_key=True, max_length=100)
    versions: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    primary_version: str
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


def save_deployment(
    session: Session, model: str, versions: dict[str, str], primary_version: str, now: datetime
) -> DeploymentRow:
    """Replace the model's deployment (the request names the full set of versions)."""
    row = session.get(DeploymentRow, model)
    if row is None:
        row = DeploymentRow(
            model=model, versions=dict(versions), primary_version=primary_version, updated_at=now
        )
    else:
        row.versions = dict(versions)
        row.primary_version = primary_version
        row.updated_at = now
    session.add(row)
    session.flush()
    return row


def get_deployment(session: Session, model: str) -> DeploymentRow | None:
    return session.get(DeploymentRow, model)


def all_deployments(session: Session) -> list[DeploymentRow]:
    return list(session.exec(select(DeploymentRow)).all())

"""Which versions of each model the gateway holds, with its contract, persisted for restarts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel, select

from decisions.columns import UtcDateTime


class DeploymentRow(SQLModel, table=True):
    """A model's deployed versions, each with the artifact name it is loaded from, and the
    contract (manifest and fallback rules) requests are validated and logged by."""

    __tablename__ = "gateway_deployment"

    model: str = Field(primary_key=True, max_length=100)
    versions: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    primary_version: str
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    manifest: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    fallback: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class ArtifactPinRow(SQLModel, table=True):
    """The sha256 each deployed version's artifact had when the router loaded it.

    A process that loads the version later (a restart, another router process) refuses
    the file if its bytes changed since: a file swapped under a version name is not served.
    """

    __tablename__ = "gateway_artifact_pin"

    model: str = Field(primary_key=True, max_length=100)
    version: str = Field(primary_key=True, max_length=100)
    artifact: str
    sha256: str = Field(max_length=64)


def save_pins(session: Session, model: str, pins: dict[str, tuple[str, str]]) -> None:
    """Record ``version -> (artifact, sha256)`` for the model, replacing its previous pins."""
    for row in session.exec(select(ArtifactPinRow).where(ArtifactPinRow.model == model)):
        session.delete(row)
    session.flush()
    for version, (artifact, sha256) in pins.items():
        session.add(ArtifactPinRow(model=model, version=version, artifact=artifact, sha256=sha256))
    session.flush()


def get_pins(session: Session, model: str) -> dict[str, tuple[str, str]]:
    rows = session.exec(select(ArtifactPinRow).where(ArtifactPinRow.model == model))
    return {row.version: (row.artifact, row.sha256) for row in rows}


def save_deployment(
    session: Session,
    model: str,
    versions: dict[str, str],
    primary_version: str,
    now: datetime,
    *,
    manifest: dict[str, Any],
    fallback: dict[str, Any] | None,
) -> DeploymentRow:
    """Replace the model's deployment (the request names the full set of versions)."""
    row = session.get(DeploymentRow, model)
    if row is None:
        row = DeploymentRow(
            model=model,
            versions=dict(versions),
            primary_version=primary_version,
            updated_at=now,
            manifest=manifest,
            fallback=fallback,
        )
    else:
        row.versions = dict(versions)
        row.primary_version = primary_version
        row.updated_at = now
        row.manifest = manifest
        row.fallback = fallback
    session.add(row)
    session.flush()
    return row


def get_deployment(session: Session, model: str) -> DeploymentRow | None:
    return session.get(DeploymentRow, model)


def all_deployments(session: Session) -> list[DeploymentRow]:
    return list(session.exec(select(DeploymentRow)).all())

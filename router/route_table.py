"""Routes persisted with the generation rules of :mod:`contracts.routing`.

The compare-and-set is one conditional ``UPDATE ... WHERE generation < new``, so two
writers (or two router processes on one Postgres) can never both win, and a retried
flip is recognised by its generation and content instead of being applied twice.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import structlog
from sqlalchemy import JSON, Column, update
from sqlmodel import Field, Session, SQLModel, col

from contracts.routing import Route, RouteSpec, RouteUpdate, Serving
from decisions.columns import UtcDateTime

log = structlog.get_logger(__name__)


class UnknownModelError(LookupError):
    """The router has no route for this model (it was never deployed here)."""

    def __init__(self, model: str) -> None:
        super().__init__(f"model {model!r} is not deployed on this router")
        self.model = model


class StaleUpdateError(Exception):
    """An update whose generation is not newer than the router's, and not a retry of it."""

    def __init__(self, change: RouteUpdate, current: Route) -> None:
        if change.generation == current.generation:
            reason = (
                f"generation {change.generation} of model {current.model!r} is already set "
                "with a different routing"
            )
        else:
            reason = (
                f"generation {change.generation} is not newer than model {current.model!r}'s "
                f"generation {current.generation}"
            )
        super().__init__(reason)
        self.reason = reason
        self.current = current


class RouteRow(SQLModel, table=True):
    """The current route of one model."""

    __tablename__ = "gateway_route"

    model: str = Field(primary_key=True, max_length=100)
    serving: str
    primary_version: str
    candidate_version: str | None = None
    shadow_versions: list[str] = Field(sa_column=Column(JSON, nullable=False))
    canary_percent: float = 0.0
    generation: int
    updated_by: str
    reason: str = ""
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))

    def to_route(self) -> Route:
        return Route.model_validate(self.model_dump())


def route_problems(spec: RouteSpec, deployed: Collection[str]) -> list[str]:
    """Why a route could not be served with these deployed versions (empty when it can)."""
    available = ", ".join(sorted(deployed)) or "none"
    named = [("primary_version", spec.primary_version)]
    if spec.candidate_version is not None:
        named.append(("candidate_version", spec.candidate_version))
    named += [("shadow_versions", version) for version in spec.shadow_versions]
    problems = [
        f"{field} {version!r} is not deployed (deployed: {available})"
        for field, version in named
        if version not in deployed
    ]
    if spec.candidate_version is None and spec.serving is Serving.CANDIDATE:
        problems.append("serving 'candidate' needs a candidate_version")
    if spec.candidate_version is None and spec.canary_percent > 0:
        problems.append("canary_percent above 0 needs a candidate_version")
    return problems


def get_route(session: Session, model: str) -> Route:
    row = session.get(RouteRow, model)
    if row is None:
        raise UnknownModelError(model)
    return row.to_route()


def ensure_initial_route(
    session: Session, model: str, primary_version: str, now: datetime
) -> Route:
    """Give a newly deployed model generation 0, serving its primary; keep any existing route."""
    row = session.get(RouteRow, model)
    if row is None:
        row = RouteRow(
            model=model,
            serving=Serving.PRIMARY.value,
            primary_version=primary_version,
            shadow_versions=[],
            generation=0,
            updated_by="deployment",
            reason="initial route of a new deployment",
            updated_at=now,
        )
        session.add(row)
        session.flush()
    return row.to_route()


def apply_update(session: Session, model: str, change: RouteUpdate, now: datetime) -> Route:
    """Apply ``change`` if its generation is newer; a retry of the current one is a no-op.

    Raises :class:`StaleUpdateError` for any other not-newer update and
    :class:`UnknownModelError` for a model with no route. Commits on success.
    """
    spec = RouteSpec.model_validate(change.model_dump(include=set(RouteSpec.model_fields)))
    result = session.exec(
        update(RouteRow)
        .where(col(RouteRow.model) == model, col(RouteRow.generation) < change.generation)
        .values(
            **spec.model_dump(mode="json"),
            generation=change.generation,
            updated_by=change.updated_by,
            reason=change.reason,
            updated_at=now,
        )
    )
    session.commit()
    current = get_route(session, model)
    if result.rowcount == 1:
        log.info(
            "route set",
            model=model,
            generation=current.generation,
            serving=current.serving.value,
            canary_percent=current.canary_percent,
            updated_by=current.updated_by,
        )
        return current
    if current.generation == change.generation and current.spec().same_routing(spec):
        log.info("route retry ignored", model=model, generation=current.generation)
        return current
    raise StaleUpdateError(change, current)


def referenced_versions(route: RouteSpec) -> set[str]:
    """Every model version a route needs deployed."""
    versions = {route.primary_version, *route.shadow_versions}
    if route.candidate_version is not None:
        versions.add(route.candidate_version)
    return versions

"""The routing contract: how Fairlane reads and flips a model's route at any routing layer.

HTTP, bearer-authenticated (the router's token):

- ``GET  {router}/v1/models/{model}/route`` -> :class:`Route`
- ``PUT  {router}/v1/models/{model}/route`` with :class:`RouteUpdate` -> :class:`Route`

A ``PUT`` carries the generation it creates. The router applies it when the
generation is newer than its own; a retry of the very same update (same generation,
same content) is answered 200 with nothing changed; any other update whose
generation is not newer is refused with 409 (stale), so two writers cannot silently
overwrite each other and a retried flip is never applied twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Serving(StrEnum):
    """What answers live requests."""

    PRIMARY = "primary"
    FALLBACK = "fallback"  # deterministic rules-based engine; models only in shadow
    CANDIDATE = "candidate"


class RouteSpec(BaseModel):
    """The desired routing of one model: the part a writer chooses."""

    serving: Serving = Serving.PRIMARY
    primary_version: str
    candidate_version: str | None = None
    shadow_versions: list[str] = Field(default_factory=list)
    canary_percent: float = Field(default=0.0, ge=0.0, le=100.0)

    def same_routing(self, other: RouteSpec) -> bool:
        return self.model_dump() == other.model_dump()


class RouteUpdate(RouteSpec):
    """A request to set the route, creating ``generation``."""

    generation: int = Field(ge=1)
    updated_by: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)


class Route(RouteSpec):
    """A model's route as the router holds it."""

    model: str
    generation: int = Field(ge=0)
    updated_by: str
    reason: str = ""
    updated_at: datetime

    def spec(self) -> RouteSpec:
        return RouteSpec.model_validate(self.model_dump(include=set(RouteSpec.model_fields)))


class RouteError(BaseModel):
    """Why a routing layer refused a request (401, 404, 422): its reason, for people.

    ``detail`` is a sentence, or (a body that failed validation) the list of problems,
    each naming the field it is about."""

    detail: str | list[dict[str, Any]]


class StaleRouteRefusal(BaseModel):
    """A 409 to a ``PUT``: the generation is not newer than the routing layer's and the
    update is not a retry of the current one. Nothing changed; ``current`` is the route
    the writer lost to, so it can re-read and decide."""

    detail: str
    current: Route

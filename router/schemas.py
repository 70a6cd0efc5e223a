"""HTTP bodies of the router beyond the routing contract: deployments and decisions.

Shared by the app and :mod:`router.client`, so both sides of the wire agree by
construction. The route itself is :mod:`contracts.routing`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from contracts.routing import Route, Serving

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class DeploymentRequest(BaseModel):
    """The versions a router should hold for a model, each with its artifact file."""

    versions: dict[Name, str] = Field(min_length=1)
    primary_version: Name


class Deployment(BaseModel):
    """A model's deployed versions as the router holds them, with its current route."""

    model: str
    versions: dict[str, str]  # version -> absolute artifact path
    primary_version: str
    updated_at: datetime
    route: Route


class Applicant(BaseModel):
    """One credit application. ``group`` is recorded for fairness monitoring, never decided on."""

    applicant_id: str = Field(min_length=1, max_length=200)
    income: float = Field(gt=0, le=1e9)
    credit_history_years: float = Field(ge=0, le=100)
    debt_ratio: float = Field(ge=0, le=1)
    zip_code: str = Field(min_length=1, max_length=20)
    group: str = Field(min_length=1, max_length=100)


class Decision(BaseModel):
    """The live answer to one application."""

    decision_id: int
    model: str
    served_by: Serving
    version: str  # a model version, or the rules engine's version when served by fallback
    approved: bool
    credit_limit: float


class DecisionRecord(BaseModel):
    """One logged decision, live or shadow, as monitoring reads it.

    ``served_by`` is the side that answered the request; a shadow row (``shadow=True``)
    carries the request's ``served_by``, its own ``version``, and in ``shadow_of`` the id
    of the live decision it shadowed.
    """

    id: int
    at: datetime
    model: str
    version: str
    served_by: Serving
    shadow: bool
    shadow_of: int | None
    applicant_id: str
    group: str
    income_band: str
    credit_band: str
    approved: bool
    credit_limit: float

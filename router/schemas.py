"""HTTP bodies of the router beyond the routing contract: deployments, decisions, outcomes.

Shared by the app and :mod:`router.client`, so both sides of the wire agree by
construction. The route itself is :mod:`contracts.routing`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, Field, model_validator

from contracts.model import SHA256_PATTERN, ArtifactName
from contracts.routing import Route, Serving

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class DeploymentRequest(BaseModel):
    """The versions a router should hold for a model, each with its artifact's name.

    Names are relative to the router's artifacts directory (``FAIRLANE_ARTIFACTS_DIR``),
    never paths: whoever holds the router's token can choose which registered file a
    version serves, not make the router open a file elsewhere. ``digests`` (sha256 per
    version, optional) must match the files; either way the router pins the digest it
    loaded and refuses the file if it changes before a later load.
    """

    versions: dict[Name, ArtifactName] = Field(min_length=1)
    primary_version: Name
    digests: dict[Name, Annotated[str, Field(pattern=SHA256_PATTERN)]] = Field(default_factory=dict)


class Deployment(BaseModel):
    """A model's deployed versions as the router holds them, with its current route."""

    model: str
    versions: dict[str, str]  # version -> artifact name in the artifacts directory
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


MAX_OUTCOMES_PER_REQUEST = 10_000


class Outcome(BaseModel):
    """The ground truth of one live decision, once known (``good``: e.g. the applicant repaid)."""

    decision_id: int = Field(ge=1)
    good: bool


class OutcomesRequest(BaseModel):
    """Outcomes to record, all or nothing; a decision named twice must carry one outcome."""

    outcomes: list[Outcome] = Field(min_length=1, max_length=MAX_OUTCOMES_PER_REQUEST)

    @model_validator(mode="after")
    def _one_outcome_per_decision(self) -> Self:
        seen: dict[int, bool] = {}
        contradicted: set[int] = set()
        for outcome in self.outcomes:
            if seen.setdefault(outcome.decision_id, outcome.good) != outcome.good:
                contradicted.add(outcome.decision_id)
        if contradicted:
            raise ValueError(
                f"decisions {sorted(contradicted)} are given both a good and a bad outcome"
            )
        return self

    def by_decision(self) -> dict[int, bool]:
        """The outcomes keyed by decision id (a repeated identical outcome counts once)."""
        return {outcome.decision_id: outcome.good for outcome in self.outcomes}


class OutcomesRecorded(BaseModel):
    """What recording did: outcomes new to the log, and outcomes it already held."""

    recorded: int = Field(ge=0)
    unchanged: int = Field(ge=0)


class DecisionSummaryRow(BaseModel):
    """Sufficient statistics of the live decisions of a window that share every field here.

    ``outcome`` is the ground truth joined to the decisions (None while unknown);
    ``credit_limit_sum`` and ``credit_limit_sumsq`` are the sum of the limits and of
    their squares, so means and variances follow without shipping the rows.
    """

    served_by: Serving
    version: str
    group: str
    income_band: str
    credit_band: str
    approved: bool
    outcome: bool | None
    count: int = Field(ge=1)
    credit_limit_sum: float
    credit_limit_sumsq: float

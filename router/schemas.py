"""HTTP bodies of the gateway beyond the routing contract: deployments, decisions, outcomes.

Shared by the app and :mod:`router.client`, so both sides of the wire agree by
construction. The route itself is :mod:`contracts.routing`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from contracts.model import SHA256_PATTERN, ArtifactName, ModelManifest
from contracts.routing import Route, Serving

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


MAX_RULES_BYTES = 1_000_000
MAX_BATCH = 10_000


class FallbackDocument(BaseModel):
    """The fallback rules YAML a deployment serves while the model is contained.

    The text itself travels (the gateway never opens a file a caller named), with the
    sha256 the registry pinned it by: a text that does not match is refused.
    """

    content: str = Field(min_length=1, max_length=MAX_RULES_BYTES)
    sha256: str = Field(pattern=SHA256_PATTERN)


class DeploymentRequest(BaseModel):
    """The versions a gateway should hold for a model, and the model's contract.

    Version artifacts are names relative to the gateway's artifacts directory
    (``FAIRLANE_ARTIFACTS_DIR``), never paths: whoever holds the gateway's token can
    choose which registered file a version serves, not make it open a file elsewhere.
    ``digests`` (sha256 per version, optional) must match the files; either way the
    gateway pins the digest it loaded and refuses the file if it changes before a later
    load. ``manifest`` is the model's registered manifest: requests are validated
    against its features, protected attributes (and groups) and strata, and the decision
    log is keyed by them; ``fallback`` is its rules, checked against the same features.
    """

    versions: dict[Name, ArtifactName] = Field(min_length=1)
    primary_version: Name
    digests: dict[Name, Annotated[str, Field(pattern=SHA256_PATTERN)]] = Field(default_factory=dict)
    manifest: ModelManifest
    fallback: FallbackDocument | None = None


class Deployment(BaseModel):
    """A model's deployed versions as the gateway holds them, its contract and its route."""

    model: str
    versions: dict[str, str]  # version -> artifact name in the artifacts directory
    primary_version: str
    updated_at: datetime
    route: Route
    manifest: ModelManifest
    fallback: FallbackDocument | None = None
    rules_version: str | None = None


FeatureValue = Annotated[StrictFloat | StrictInt | StrictStr | StrictBool, Field()]
Key = Annotated[str, Field(min_length=1, max_length=128)]


class DecisionRequest(BaseModel):
    """One request for a decision: the model's features, and who it concerns.

    ``attributes`` holds the protected attributes: recorded for fairness monitoring,
    never shown to a model or the rules. ``strata`` holds stratum columns the features
    do not carry. Everything is checked against the deployed manifest.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    features: dict[Key, FeatureValue]
    attributes: dict[Key, Annotated[str, Field(min_length=1, max_length=100)]]
    strata: dict[Key, Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=dict
    )


class BatchDecisionRequest(BaseModel):
    """Up to :data:`MAX_BATCH` requests, validated all or nothing and scored together."""

    model_config = ConfigDict(extra="forbid")

    records: list[DecisionRequest] = Field(min_length=1, max_length=MAX_BATCH)


class Decision(BaseModel):
    """The live answer to one request; ``None`` for an outcome the model does not have."""

    decision_id: str
    id: str
    model: str
    served_by: Serving
    version: str  # a model version, or the rules' version when served by the fallback
    decision: bool | None
    amount: float | None


class BatchDecisions(BaseModel):
    decisions: list[Decision]


class LoggedDecision(BaseModel):
    """One logged decision, live or shadow, as the gateway's listing shows it.

    ``served_by`` is the side that answered the request; a shadow row (``shadow=True``)
    carries the request's ``served_by``, its own ``version``, and in ``shadow_of`` the id
    of the live decision it shadowed. ``group`` and ``stratum`` are the keys of the
    manifest (:meth:`contracts.model.ModelManifest.group_of` and ``stratum_of``);
    ``rules_version`` stamps every answer the fallback gave; ``outcome`` is the ground
    truth once recorded.
    """

    decision_id: str
    at: datetime
    model: str
    version: str
    served_by: Serving
    shadow: bool
    shadow_of: str | None
    group: str
    stratum: str
    decision: bool | None
    amount: float | None
    rules_version: str | None
    outcome: bool | None


MAX_OUTCOMES_PER_REQUEST = 10_000


class Outcome(BaseModel):
    """The ground truth of one live decision, once known (``good``: e.g. the loan was repaid)."""

    decision_id: str = Field(min_length=1, max_length=200)
    good: bool


class OutcomesRequest(BaseModel):
    """Outcomes to record, all or nothing; a decision named twice must carry one outcome."""

    outcomes: list[Outcome] = Field(min_length=1, max_length=MAX_OUTCOMES_PER_REQUEST)


class OutcomesRecorded(BaseModel):
    """What recording did: outcomes new to the log, and outcomes it already held."""

    recorded: int = Field(ge=0)
    unchanged: int = Field(ge=0)

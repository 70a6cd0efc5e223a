"""One decision and one outcome as they are logged, reported or exported.

The group and the stratum are already keys here (``manifest.group_of`` and
``manifest.stratum_of`` of the scored record): whoever writes a decision knows the
manifest, and everything that reads decisions back (windows, rollups, Prometheus
series) needs only these keys, never the model's features.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.routing import Serving

DECISION_ID = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="caller-given, unique per model: the idempotency key of the decision",
    ),
]
KEY_LENGTH = 200
KEY = Annotated[str, Field(max_length=KEY_LENGTH)]

WINDOW_PATH = "/v1/models/{model}/decisions/summary"
"""The gateway route a :class:`WindowQuery` asks (query parameters) and that answers with
:func:`decisions.store.window`'s :class:`~contracts.metrics.DecisionWindow` as JSON."""


class DecisionRecord(BaseModel):
    """One live decision or shadow score of one model version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision_id: DECISION_ID
    model: str = Field(min_length=1, max_length=100)
    version: str = Field(min_length=1, max_length=100)
    served_by: Serving = Field(description="who answered live: primary, fallback or candidate")
    shadow: bool = Field(
        default=False, description="a shadow score: logged, never returned, never in a window"
    )
    at: AwareDatetime
    group: KEY = Field(min_length=1, description="manifest.group_of(record)")
    stratum: KEY = Field(default="", description="manifest.stratum_of(record); '' unstratified")
    decision: bool | None = Field(
        default=None, description="the binary decision, if the model has one"
    )
    amount: float | None = Field(
        default=None, allow_inf_nan=False, description="the continuous amount, if the model has one"
    )
    rules_version: str | None = Field(
        default=None, max_length=100, description="the fallback rules that answered, if they did"
    )


class OutcomeRecord(BaseModel):
    """The ground truth of one logged decision (True: good, e.g. repaid), final once recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision_id: DECISION_ID
    outcome: bool


class WindowQuery(BaseModel):
    """What a window look asks a decision log: ``[since, until)`` relabelled for a candidate."""

    model_config = ConfigDict(extra="forbid")

    candidate_version: str = Field(min_length=1, max_length=100)
    since: AwareDatetime
    until: AwareDatetime


def epoch_minute(at: datetime) -> int:
    """The minute ``at`` falls in, as whole minutes since the Unix epoch (floor)."""
    return int(at.timestamp() // 60)

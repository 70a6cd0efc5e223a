"""What a metrics provider hands the canary analysis (and the drift monitor): decision cells.

A live window can hold millions of decisions, so providers never ship rows: they
ship *sufficient statistics* per cell (side x group x stratum x decision x known
outcome): a count, the sum of the amounts and the sum of their squares. Every metric
the analysis judges (selection rates, true/false-positive rates, mean amounts, their
ratios inside strata) and every interval around it is a function of these numbers,
so the decision log (a SQL GROUP BY) and Prometheus (per-group counters and sums)
can both answer the same question, and the cost of an analysis does not grow with
the traffic.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class Side(StrEnum):
    """Which arm of a canary a decision came from."""

    CANDIDATE = "candidate"  # answered live by the candidate version
    STABLE = "stable"  # answered live by whatever the route serves (fallback or primary)


class DecisionCell(BaseModel):
    """Sufficient statistics of the live decisions sharing every field but the amount."""

    side: Side
    group: str = Field(min_length=1)
    stratum: str = Field(
        description="the manifest's strata labels joined by '|', e.g. 'low|senior'; '' when "
        "unstratified"
    )
    approved: bool
    outcome: bool | None = Field(
        description="ground truth joined to the decision (True: good, e.g. repaid); "
        "None while it has not arrived"
    )
    count: int = Field(ge=1)
    amount_sum: float
    amount_sumsq: float = Field(ge=0)


class DecisionWindow(BaseModel):
    """The decisions of one model in ``[since, until)``, as a provider saw them."""

    model: str
    candidate_version: str
    since: datetime
    until: datetime
    provider: str = Field(description="which metrics provider answered, for the evidence")
    covered_since: datetime | None = Field(
        default=None,
        description="where the cells really start when the provider rounds the window's "
        "edges (minute rollups count the minutes overlapping [since, until)); None: at since",
    )
    covered_until: datetime | None = Field(
        default=None, description="where the cells really end; None: at until"
    )
    cells: list[DecisionCell] = Field(default_factory=list)

    @property
    def decisions(self) -> int:
        return sum(cell.count for cell in self.cells)

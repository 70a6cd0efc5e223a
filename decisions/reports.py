"""Decisions a team's service reports to Fairlane, checked against the model's manifest.

A service reports what it decided with the *values* the manifest names (each
protected attribute, each column stratum, the numeric feature of each binned
stratum), never a group or stratum key of its own making: Fairlane computes both with
``manifest.group_of`` / ``manifest.stratum_of``, so reported decisions land in the
same cells as the gateway's. :func:`to_records` checks a whole batch first and
refuses it at its first bad record (index and field), so nothing is half-written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.model import ModelManifest
from contracts.routing import Serving
from decisions.records import DECISION_ID, KEY_LENGTH, DecisionRecord, OutcomeRecord

MAX_CLOCK_AHEAD = timedelta(minutes=5)
"""How far ahead of Fairlane's clock a decision's time may be by default (clocks drift;
the future does not report); ``Settings.reported_decision_max_ahead_s``."""

Value = str | int | float | bool


class ReportedDecision(BaseModel):
    """One decision as a service reports it."""

    model_config = ConfigDict(extra="forbid")

    decision_id: DECISION_ID
    version: str = Field(
        min_length=1, max_length=100, description="a version of the manifest, or the rules'"
    )
    served_by: Serving = Serving.PRIMARY
    shadow: bool = False
    at: AwareDatetime
    values: dict[str, Value] = Field(
        default_factory=dict,
        max_length=64,
        description="by manifest name: each protected attribute, each column stratum and "
        "the feature of each binned stratum",
    )
    decision: bool | None = None
    amount: float | None = Field(default=None, allow_inf_nan=False)
    rules_version: str | None = Field(default=None, max_length=100)


class DecisionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decisions: list[ReportedDecision] = Field(min_length=1)


class OutcomeBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeRecord] = Field(min_length=1)


class BadRecord(ValueError):
    """A record of a batch the manifest refuses: its index, the field, and why."""

    def __init__(self, index: int, field: str, reason: str) -> None:
        self.index = index
        self.field = field
        self.reason = reason
        super().__init__(f"record {index} ({field}): {reason}")


def to_records(
    manifest: ModelManifest,
    reported: Sequence[ReportedDecision],
    *,
    now: datetime | None = None,
    max_ahead: timedelta = MAX_CLOCK_AHEAD,
) -> list[DecisionRecord]:
    """The batch as records of ``manifest``'s model; :class:`BadRecord` at the first bad one.

    A decision stamped more than ``max_ahead`` after ``now`` (the wall clock) is refused.
    """
    latest = (now or datetime.now(UTC)) + max_ahead
    versions = {v.version for v in manifest.versions}
    return [_record(manifest, versions, latest, i, item) for i, item in enumerate(reported)]


def _record(
    manifest: ModelManifest,
    versions: set[str],
    latest: datetime,
    index: int,
    item: ReportedDecision,
) -> DecisionRecord:
    if item.served_by is not Serving.FALLBACK and item.version not in versions:
        raise BadRecord(
            index,
            "version",
            f"{item.version!r} is not a version of model {manifest.id!r} "
            f"({sorted(versions)}); only the fallback answers with a version of its own",
        )
    if item.at > latest:
        raise BadRecord(index, "at", f"{item.at.isoformat()} is in the future")
    _check_outcomes(manifest, index, item)
    values = item.values
    for attribute in manifest.protected_attributes:
        value = values.get(attribute)
        if value is None:
            raise BadRecord(index, f"values.{attribute}", "missing: a protected attribute")
        declared = manifest.groups.get(attribute)
        if declared is not None and str(value) not in declared:
            raise BadRecord(
                index,
                f"values.{attribute}",
                f"unknown group {value!r} (declared: {declared})",
            )
    for name in manifest.strata:
        binned = manifest.bins.get(name)
        column = binned.feature if binned else name
        value = values.get(column)
        if value is None:
            raise BadRecord(index, f"values.{column}", f"missing: needed for stratum {name!r}")
        if binned and (isinstance(value, bool | str) or not math.isfinite(float(value))):
            raise BadRecord(
                index, f"values.{column}", f"must be a finite number (stratum {name!r} bins it)"
            )
    group, stratum = manifest.group_of(values), manifest.stratum_of(values)
    for field, key in (("group", group), ("stratum", stratum)):
        if len(key) > KEY_LENGTH:
            raise BadRecord(index, "values", f"the {field} key is over {KEY_LENGTH} characters")
    # Every field is checked: the reported ones by ReportedDecision, the keys just above,
    # the model id by the manifest. Validating a thousand records again would cost more
    # than writing them.
    return DecisionRecord.model_construct(
        decision_id=item.decision_id,
        model=manifest.id,
        version=item.version,
        served_by=item.served_by,
        shadow=item.shadow,
        at=item.at,
        group=group,
        stratum=stratum,
        decision=item.decision,
        amount=item.amount,
        rules_version=item.rules_version,
    )


def _check_outcomes(manifest: ModelManifest, index: int, item: ReportedDecision) -> None:
    """The decision and the amount are present exactly when the manifest declares them."""
    for field, declared, given in (
        ("decision", manifest.outcomes.decision, item.decision),
        ("amount", manifest.outcomes.amount, item.amount),
    ):
        if declared is not None and given is None:
            raise BadRecord(index, field, f"missing: the model's outcome {declared!r}")
        if declared is None and given is not None:
            raise BadRecord(index, field, f"model {manifest.id!r} declares no {field} outcome")

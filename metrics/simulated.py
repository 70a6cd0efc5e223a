"""Synthetic live traffic: a metrics provider for tests and benchmarks that needs no router.

Workflow tests on a time-skipping Temporal server bake canaries for weeks in
seconds, and the statistical studies of the canary analysis run thousands of ramps;
both need live windows that look like a router's without a router. This provider
draws them from a small generative model: per group, applicants spread over strata
(income x credit band); per side (candidate, stable) x group, a decision rate, an
approval probability, the approved amount's mean and standard deviation in each
stratum, and optionally the chance of a good outcome after an approval or a decline.
Regressions make one side worse for a group for a while (the candidate, by default).

Time is cut into buckets (an hour by default) aligned to ``epoch``, when the traffic
starts. Every decision of a bucket is stamped at the bucket's start, so a window
``[since, until)`` holds exactly the buckets whose start lies in it: whole buckets,
never pro rata. Windows therefore add up (``[a, b)`` and ``[b, c)`` make ``[a, c)``),
and a window shorter than a bucket may be empty.

Each bucket is drawn from its own generator, seeded by the model's seed and the
bucket's index, so overlapping cumulative windows agree on every bucket they share
and a retried call returns the same numbers. Outcomes of a bucket are reported once
``outcome_delay`` has passed since its stamp (as of the window's ``until``), so they
arrive late, as ground truth does. Nothing is drawn per decision: counts come from
Poisson and binomial draws, and the amounts of a cell of k approvals from the
normal model's sufficient statistics (their sum ~ N(k mu, k sigma^2), and the sum of
squared deviations ~ sigma^2 chi^2(k - 1), independent of the sum).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from contracts.metrics import DecisionCell, DecisionWindow, Side
from contracts.targets import RouterRef

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

SIDES = (Side.CANDIDATE, Side.STABLE)
_OUTCOMES = (False, True, None)  # the last axis of a window's totals
_CELLS = TypeAdapter(list[DecisionCell])


class AmountModel(BaseModel):
    """Approved amounts in one stratum: normal with this mean and standard deviation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: float = Field(gt=0)
    sd: float = Field(ge=0)


class ArmModel(BaseModel):
    """How one side (candidate or stable) treats one group."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decisions_per_hour: float = Field(ge=0)
    approval_probability: float = Field(ge=0, le=1)
    amounts: dict[str, AmountModel] = Field(description="stratum -> approved amount")
    good_if_approved: float | None = Field(
        default=None, ge=0, le=1, description="P(good outcome | approved); None: no outcomes"
    )
    good_if_declined: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _outcomes_complete(self) -> ArmModel:
        if (self.good_if_approved is None) != (self.good_if_declined is None):
            raise ValueError("give both good_if_approved and good_if_declined, or neither")
        return self


class GroupModel(BaseModel):
    """One demographic group: where its applicants sit, and how each side treats it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strata: dict[str, float] = Field(
        min_length=1, description="stratum -> share of the group's applicants (normalised)"
    )
    candidate: ArmModel
    stable: ArmModel

    @model_validator(mode="after")
    def _consistent(self) -> GroupModel:
        if any(share < 0 for share in self.strata.values()) or sum(self.strata.values()) <= 0:
            raise ValueError("stratum shares must be non-negative and not all zero")
        for side, arm in (("candidate", self.candidate), ("stable", self.stable)):
            missing = sorted(set(self.strata) - set(arm.amounts))
            if missing:
                raise ValueError(f"{side} has no amount model for strata {missing}")
        return self


class Regression(BaseModel):
    """One side (the candidate, unless told) turns worse for one group from ``starts_at``
    on, until ``ends_at`` if given.

    Approval probability is multiplied by ``approval_factor`` (capped at 1) and the
    whole amount distribution by ``amount_factor`` (mean and sd alike); the factors
    of several regressions in force multiply.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    group: str
    side: Side = Side.CANDIDATE
    approval_factor: float = Field(default=1.0, ge=0)
    amount_factor: float = Field(default=1.0, gt=0)


class TrafficModel(BaseModel):
    """Everything the simulated provider draws from; equal models give equal windows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    groups: dict[str, GroupModel] = Field(min_length=1)
    epoch: AwareDatetime = Field(description="traffic starts here; buckets are aligned to it")
    bucket: timedelta = Field(default=timedelta(hours=1), gt=timedelta(0))
    seed: int = Field(default=0, ge=0)
    outcome_delay: timedelta | None = Field(
        default=None, description="how long after a decision its outcome is known; None: never"
    )
    regressions: list[Regression] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_groups(self) -> TrafficModel:
        unknown = sorted({r.group for r in self.regressions} - set(self.groups))
        if unknown:
            raise ValueError(f"regressions name unknown groups {unknown}")
        return self


@dataclass(frozen=True, slots=True)
class _Bucket:
    """A bucket's draws, or a sum of buckets, indexed (side, group, stratum, approved, good)."""

    counts: IntArray  # decisions; index 1 of the last axis: good outcome
    sums: FloatArray  # amount sums; declined cells hold 0
    squares: FloatArray  # amount sums of squares


def _ceil_div(span: timedelta, bucket: timedelta) -> int:
    return -(-span // bucket)


class SimulatedTraffic:
    """A :class:`~metrics.provider.MetricsProvider` answering from a :class:`TrafficModel`."""

    name = "simulated"

    def __init__(self, model: TrafficModel) -> None:
        self.model = model
        self._groups = sorted(model.groups)
        self._strata = sorted({s for group in model.groups.values() for s in group.strata})
        shape = (len(SIDES), len(self._groups), len(self._strata))
        hours = model.bucket / timedelta(hours=1)
        self._rates = np.zeros(shape)
        self._approval = np.zeros(shape)
        self._means = np.zeros(shape)
        self._sds = np.zeros(shape)
        self._good = np.zeros((*shape, 2))  # P(good | declined), P(good | approved)
        self._has_outcomes = np.zeros(shape, dtype=bool)
        for g, name in enumerate(self._groups):
            group = model.groups[name]
            total_share = sum(group.strata.values())
            for side, arm in enumerate((group.candidate, group.stable)):
                for t, stratum in enumerate(self._strata):
                    share = group.strata.get(stratum, 0.0) / total_share
                    self._rates[side, g, t] = arm.decisions_per_hour * share * hours
                    self._approval[side, g, t] = arm.approval_probability
                    if stratum in arm.amounts:
                        self._means[side, g, t] = arm.amounts[stratum].mean
                        self._sds[side, g, t] = arm.amounts[stratum].sd
                    if arm.good_if_approved is not None and arm.good_if_declined is not None:
                        self._good[side, g, t] = (arm.good_if_declined, arm.good_if_approved)
                        self._has_outcomes[side, g, t] = True
        self._runs: dict[int, list[_Bucket]] = {}

    async def window(
        self,
        router: RouterRef,
        model: str,
        candidate_version: str,
        since: datetime,
        until: datetime,
    ) -> DecisionWindow:
        """The simulated decisions with ``since <= stamp < until`` (``router`` is unused)."""
        return DecisionWindow(
            model=model,
            candidate_version=candidate_version,
            since=since,
            until=until,
            provider=self.name,
            cells=self.cells_for(since, until),
        )

    def cells_for(self, since: datetime, until: datetime) -> list[DecisionCell]:
        """The window's cells, synchronously (for simulations that need no event loop).

        Validated in one call for the whole list: a look holds a few hundred cells, and
        building them one by one cost more than the analysis of the look.
        """
        counts, sums, squares = self._totals(since, until)
        present = counts > 0
        return _CELLS.validate_python(
            [
                {
                    "side": SIDES[side],
                    "group": self._groups[group],
                    "stratum": self._strata[stratum],
                    "approved": bool(approved),
                    "outcome": _OUTCOMES[outcome],
                    "count": count,
                    "amount_sum": total,
                    "amount_sumsq": square,
                }
                for (side, group, stratum, approved, outcome), count, total, square in zip(
                    np.argwhere(present).tolist(),
                    counts[present].tolist(),
                    sums[present].tolist(),
                    squares[present].tolist(),
                    strict=True,
                )
            ]
        )

    def _totals(self, since: datetime, until: datetime) -> tuple[IntArray, FloatArray, FloatArray]:
        """Sums over the window's buckets, by (side, group, stratum, approved, outcome).

        The outcome axis is (bad, good, not known): a bucket whose outcomes have not
        arrived by ``until``, or an arm with no outcome model, adds to the last slot.
        Outcomes arrive in stamp order, so the known buckets are a prefix of the window.
        """
        model = self.model
        first = max(0, _ceil_div(since - model.epoch, model.bucket))
        end = max(first, _ceil_div(until - model.epoch, model.bucket))
        arrived = first
        if model.outcome_delay is not None:
            # stamp + delay <= until  <=>  index <= (until - delay - epoch) / bucket
            last = (until - model.outcome_delay - model.epoch) // model.bucket
            arrived = min(max(first, last + 1), end)
        run = self._run(first, end)
        start, cut, stop = run[0], run[arrived - first], run[end - first]
        totals = []
        for field in ("counts", "sums", "squares"):
            begin, middle, finish = (getattr(bucket, field) for bucket in (start, cut, stop))
            total = np.concatenate(
                (middle - begin, (finish - middle).sum(axis=-1, keepdims=True)), axis=-1
            )
            total[~self._has_outcomes, :, 2] += total[~self._has_outcomes, :, :2].sum(axis=-1)
            total[~self._has_outcomes, :, :2] = 0
            totals.append(total)
        counts, sums, squares = totals
        return counts, sums, squares

    def _run(self, first: int, end: int) -> list[_Bucket]:
        """Running sums of the buckets from ``first``: entry k sums buckets first..first+k-1.

        Kept per starting bucket, so the cumulative windows of a ramp step (one
        ``since``, a growing ``until``) cost one new bucket a look, not all of them.
        """
        run = self._runs.get(first)
        if run is None:
            shape = (*self._rates.shape, 2, 2)
            run = self._runs[first] = [
                _Bucket(np.zeros(shape, np.int64), np.zeros(shape), np.zeros(shape))
            ]
        while len(run) <= end - first:
            latest, bucket = run[-1], self._draw(first + len(run) - 1)
            run.append(
                _Bucket(
                    latest.counts + bucket.counts,
                    latest.sums + bucket.sums,
                    latest.squares + bucket.squares,
                )
            )
        return run

    def _draw(self, index: int) -> _Bucket:
        rng = np.random.default_rng([self.model.seed, index])
        approval, scale = self._regressed(self.model.epoch + index * self.model.bucket)
        decisions = rng.poisson(self._rates)
        approved = rng.binomial(decisions, np.minimum(self._approval * approval, 1.0))
        by_decision = np.stack((decisions - approved, approved), axis=-1)
        good = rng.binomial(by_decision, self._good)
        counts = np.stack((by_decision - good, good), axis=-1)  # (..., approved, good)

        # Amounts of the approved cells only, split by outcome like the counts.
        k = counts[..., 1, :]
        mean = (self._means * scale)[..., np.newaxis]
        sd = (self._sds * scale)[..., np.newaxis]
        sums = k * mean + sd * np.sqrt(k) * rng.standard_normal(k.shape)
        deviations = sd**2 * 2.0 * rng.standard_gamma(np.maximum(k - 1, 0) / 2.0)
        squares = np.where(k > 0, deviations + sums**2 / np.maximum(k, 1), 0.0)
        sums = np.where(k > 0, sums, 0.0)
        zeros = np.zeros_like(sums)
        return _Bucket(
            counts=counts.astype(np.int64),
            sums=np.stack((zeros, sums), axis=-2),
            squares=np.stack((zeros, squares), axis=-2),
        )

    def _regressed(self, stamp: datetime) -> tuple[FloatArray, FloatArray]:
        """Approval and amount factors in force at ``stamp``, per (side, group, stratum)."""
        approval = np.ones_like(self._rates)
        scale = np.ones_like(self._rates)
        for regression in self.model.regressions:
            ended = regression.ends_at is not None and stamp >= regression.ends_at
            if stamp >= regression.starts_at and not ended:
                g = self._groups.index(regression.group)
                side = SIDES.index(regression.side)
                approval[side, g] *= regression.approval_factor
                scale[side, g] *= regression.amount_factor
        return approval, scale

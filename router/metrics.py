"""The gateway's Prometheus metrics: live decisions and their outcomes as per-cell counters.

The canary analysis and the drift monitor need, per cell of (side, group, stratum,
decision, outcome), a count, the sum of the amounts and the sum of their squares
(:class:`~contracts.metrics.DecisionCell`). The router keeps exactly those three as
counters labelled by cell, so Prometheus can answer the same question the decision
log's ``GROUP BY`` answers (:mod:`metrics.prometheus` reads them back):

* ``fairlane_router_decisions_total`` and ``fairlane_router_decision_amount_total`` /
  ``..._amount_squares_total``: live decisions, labelled ``model``, ``version``,
  ``route`` (who answered: ``primary``, ``fallback`` or ``candidate``, the gateway's
  ``served_by``), ``group`` and ``stratum`` (the manifest's keys, see
  :meth:`contracts.model.ModelManifest.group_of`) and ``decision`` (true or false).
  Amounts are summed over every decision, declines included (their amount is 0), as
  the decision log's summary sums them.
* ``fairlane_router_shadow_scores_total`` (and its amounts): shadow scores, logged and
  never returned, on their own counters so no sum over live decisions can pick them
  up by accident; ``route`` is the side that answered the request live.
* ``fairlane_router_outcomes_total`` (and its amounts): outcomes as they are recorded,
  with the labels of the decision they judge and ``outcome`` (``good`` / ``bad``).
  Decisions minus outcomes of a cell are its decisions whose outcome is still unknown.

Counters move only after the database committed, and a resent outcome (a no-op for the
log) is not counted again, so the counters never claim what the log does not hold.
Counting must never cost an applicant their answer: a failure to count is logged and
swallowed. Each app has its own registry, so several routers can share a process.

Cardinality is models x versions x 3 routes x groups x strata x 2, a few thousand
series for a typical model; request ids and decision ids are never labels.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from prometheus_client import CollectorRegistry, Counter, generate_latest
from sqlalchemy import func, select
from sqlmodel import Session, col

from router.decision_log import DecisionRow
from router.outcomes import OutcomeRow

log = structlog.get_logger(__name__)

DECISION_LABELS = ("model", "version", "route", "group", "stratum", "decision")
OUTCOME_LABELS = (*DECISION_LABELS, "outcome")

DECISIONS = "fairlane_router_decisions_total"
DECISION_AMOUNT = "fairlane_router_decision_amount_total"
DECISION_AMOUNT_SQUARES = "fairlane_router_decision_amount_squares_total"
SHADOW_SCORES = "fairlane_router_shadow_scores_total"
SHADOW_AMOUNT = "fairlane_router_shadow_score_amount_total"
SHADOW_AMOUNT_SQUARES = "fairlane_router_shadow_score_amount_squares_total"
OUTCOMES = "fairlane_router_outcomes_total"
OUTCOME_AMOUNT = "fairlane_router_outcome_amount_total"
OUTCOME_AMOUNT_SQUARES = "fairlane_router_outcome_amount_squares_total"

_EXPOSED = (
    DECISIONS,
    DECISION_AMOUNT,
    DECISION_AMOUNT_SQUARES,
    SHADOW_SCORES,
    SHADOW_AMOUNT,
    SHADOW_AMOUNT_SQUARES,
    OUTCOMES,
    OUTCOME_AMOUNT,
    OUTCOME_AMOUNT_SQUARES,
)

# Decision ids per IN (...) list: well under every database's limit on bound parameters.
_CHUNK = 500

Labels = tuple[str, ...]


def _flag(value: bool) -> str:
    return "true" if value else "false"


def decision_labels(row: DecisionRow) -> Labels:
    """The label values of a logged decision (live or shadow), in DECISION_LABELS order."""
    return (
        row.model,
        row.version,
        row.served_by,
        row.group,
        row.stratum,
        _flag(row.decision),
    )


class _CellCounters:
    """A count, an amount sum and a sum of squares under the same labels."""

    def __init__(
        self,
        names: tuple[str, str, str],
        what: str,
        labels: Sequence[str],
        registry: CollectorRegistry,
    ) -> None:
        count, amount, squares = names
        self.count = Counter(count, what, labels, registry=registry)
        self.amount = Counter(amount, f"sum of the amounts of {what}", labels, registry=registry)
        self.squares = Counter(
            squares, f"sum of the squared amounts of {what}", labels, registry=registry
        )

    def add(self, labels: Labels, count: int, amount: float, squares: float) -> None:
        self.count.labels(*labels).inc(count)
        if amount < 0:  # a counter cannot go down; amounts are never negative
            log.warning("negative amount not counted", labels=labels, amount=amount)
            return
        self.amount.labels(*labels).inc(amount)
        self.squares.labels(*labels).inc(squares)


@dataclass(frozen=True, slots=True)
class DecisionTally:
    """A decision's increments, read from its rows before the commit expires them."""

    live: tuple[Labels, float]
    shadows: tuple[tuple[Labels, float], ...]


@dataclass(frozen=True, slots=True)
class OutcomeCell:
    """Newly recorded outcomes sharing their decisions' labels and their verdict."""

    labels: Labels
    good: bool
    count: int
    amount_sum: float
    amount_sumsq: float


class RouterMetrics:
    """One router app's counters, on a registry of its own (``registry``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._live = _CellCounters(
            (DECISIONS, DECISION_AMOUNT, DECISION_AMOUNT_SQUARES),
            "live decisions",
            DECISION_LABELS,
            self.registry,
        )
        self._shadow = _CellCounters(
            (SHADOW_SCORES, SHADOW_AMOUNT, SHADOW_AMOUNT_SQUARES),
            "shadow scores (logged, never returned)",
            DECISION_LABELS,
            self.registry,
        )
        self._outcomes = _CellCounters(
            (OUTCOMES, OUTCOME_AMOUNT, OUTCOME_AMOUNT_SQUARES),
            "recorded outcomes, by the labels of the decision they judge",
            OUTCOME_LABELS,
            self.registry,
        )

    def exposition(self) -> bytes:
        """The counters in the Prometheus text format, without ``*_created`` timestamps.

        The client library would add a ``_created`` gauge beside every counter series,
        doubling what Prometheus stores for nothing the readers here use.
        """
        return generate_latest(self.registry.restricted_registry(_EXPOSED))

    @staticmethod
    def tally(live: DecisionRow, shadows: Sequence[DecisionRow]) -> DecisionTally:
        """What :meth:`count_decision` will add; call it before the rows are committed."""
        return DecisionTally(
            live=(decision_labels(live), live.amount),
            shadows=tuple((decision_labels(row), row.amount) for row in shadows),
        )

    def count_decision(self, tally: DecisionTally) -> None:
        """Count a committed decision and its shadow scores."""
        try:
            labels, amount = tally.live
            self._live.add(labels, 1, amount, amount * amount)
            for labels, amount in tally.shadows:
                self._shadow.add(labels, 1, amount, amount * amount)
        except Exception:
            log.warning("decision not counted in the metrics", exc_info=True)

    def count_outcomes(
        self, session: Session, model: str, outcomes: Mapping[int, bool], recorded_at: datetime
    ) -> None:
        """Count the outcomes of ``outcomes`` this request recorded (``recorded_at``).

        Call it after :func:`router.outcomes.record_outcomes` committed with the same
        ``recorded_at``: the rows it wrote carry that time and the ones it found already
        recorded do not, so a resent outcome is not counted twice.
        """
        try:
            for cell in newly_recorded(session, model, list(outcomes), recorded_at):
                labels = (*cell.labels, "good" if cell.good else "bad")
                self._outcomes.add(labels, cell.count, cell.amount_sum, cell.amount_sumsq)
        except Exception:
            log.warning("outcomes not counted in the metrics", model=model, exc_info=True)


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def newly_recorded(
    session: Session, model: str, ids: list[int], recorded_at: datetime
) -> list[OutcomeCell]:
    """Outcomes among ``ids`` recorded at ``recorded_at``, summed per decision cell."""
    keys = (
        col(DecisionRow.model),
        col(DecisionRow.version),
        col(DecisionRow.served_by),
        col(DecisionRow.group),
        col(DecisionRow.stratum),
        col(DecisionRow.decision),
        col(OutcomeRow.good),
    )
    amount = col(DecisionRow.amount)
    sums: dict[tuple[Labels, bool], tuple[int, float, float]] = {}
    for chunk in _chunks(sorted(ids)):
        query = (
            select(*keys, func.count(), func.sum(amount), func.sum(amount * amount))
            .select_from(OutcomeRow)
            .join(DecisionRow, col(DecisionRow.id) == col(OutcomeRow.decision_id))
            .where(
                col(OutcomeRow.decision_id).in_(chunk),
                col(OutcomeRow.recorded_at) == recorded_at,
                col(DecisionRow.model) == model,
            )
            .group_by(*keys)
        )
        for (
            *labels,
            decision,
            good,
            count,
            amount_sum,
            amount_sumsq,
        ) in session.connection().execute(query):
            key = ((*labels, _flag(decision)), bool(good))
            n, total, squares = sums.get(key, (0, 0.0, 0.0))
            sums[key] = (n + count, total + amount_sum, squares + amount_sumsq)
    session.rollback()  # end the read transaction
    return [
        OutcomeCell(labels, good, count, amount_sum, amount_sumsq)
        for (labels, good), (count, amount_sum, amount_sumsq) in sums.items()
    ]

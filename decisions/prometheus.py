"""Decisions as Prometheus counters, in the convention ``docs/decision-metrics.md`` documents.

A gateway (Fairlane's, or any service that wants its decisions read from Prometheus)
calls :meth:`DecisionCounters.count_decision` once per committed decision and
:meth:`DecisionCounters.count_outcomes` with what :func:`decisions.store.record_outcomes`
newly recorded; :mod:`metrics.prometheus` reads the counters back as a window.

Counting must never cost a caller its answer: a failure to count is logged and
swallowed. Counters cannot go down, so a negative amount is counted as a decision but
left out of the amount sums (and logged).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import structlog
from prometheus_client import CollectorRegistry, Counter, generate_latest

from decisions.records import DecisionRecord
from decisions.store import OutcomeCell

log = structlog.get_logger(__name__)

LABELS = ("model", "version", "served_by", "group", "stratum", "decision")
OUTCOME_LABELS = (*LABELS, "outcome")

DECISIONS = "fairlane_decisions_total"
DECISION_AMOUNT = "fairlane_decision_amount_total"
DECISION_AMOUNT_SQUARES = "fairlane_decision_amount_squares_total"
SHADOW_DECISIONS = "fairlane_shadow_decisions_total"
SHADOW_AMOUNT = "fairlane_shadow_decision_amount_total"
SHADOW_AMOUNT_SQUARES = "fairlane_shadow_decision_amount_squares_total"
OUTCOMES = "fairlane_outcomes_total"
OUTCOME_AMOUNT = "fairlane_outcome_amount_total"
OUTCOME_AMOUNT_SQUARES = "fairlane_outcome_amount_squares_total"

DECISION_COUNTERS = (DECISIONS, DECISION_AMOUNT, DECISION_AMOUNT_SQUARES)
SHADOW_COUNTERS = (SHADOW_DECISIONS, SHADOW_AMOUNT, SHADOW_AMOUNT_SQUARES)
OUTCOME_COUNTERS = (OUTCOMES, OUTCOME_AMOUNT, OUTCOME_AMOUNT_SQUARES)

Labels = tuple[str, ...]


def flag_label(value: bool | None) -> str:
    """A decision or outcome as a label value: ``true``, ``false`` or ``none``."""
    return "none" if value is None else ("true" if value else "false")


def decision_labels(record: DecisionRecord) -> Labels:
    """The label values of a decision, in :data:`LABELS` order."""
    return (
        record.model,
        record.version,
        record.served_by.value,
        record.group,
        record.stratum,
        flag_label(record.decision),
    )


class _CellCounters:
    """A count, an amount sum and a sum of squares under the same labels."""

    def __init__(
        self,
        names: tuple[str, ...],
        what: str,
        labels: list[str],
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
        if amount < 0:
            log.warning("negative amount not counted", labels=labels, amount=amount)
            return
        self.amount.labels(*labels).inc(amount)
        self.squares.labels(*labels).inc(squares)


class DecisionCounters:
    """One process's decision counters, on ``registry`` (a fresh one by default).

    ``labels`` renames the convention's labels to a team's own (what a manifest's
    ``decisions.labels`` maps back).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        renamed = dict(labels or {})
        live = [renamed.get(n, n) for n in LABELS]
        outcome = [renamed.get(n, n) for n in OUTCOME_LABELS]
        self._live = _CellCounters(DECISION_COUNTERS, "live decisions", live, self.registry)
        self._shadow = _CellCounters(
            SHADOW_COUNTERS, "shadow decisions (logged, never returned)", live, self.registry
        )
        self._outcomes = _CellCounters(
            OUTCOME_COUNTERS,
            "recorded outcomes, by the labels of the decision they judge",
            outcome,
            self.registry,
        )

    def count_decision(self, record: DecisionRecord) -> None:
        """Count one committed decision (live or shadow)."""
        try:
            amount = record.amount or 0.0
            counters = self._shadow if record.shadow else self._live
            counters.add(decision_labels(record), 1, amount, amount * amount)
        except Exception:
            log.warning("decision not counted in the metrics", exc_info=True)

    def count_outcomes(self, cells: Iterable[OutcomeCell]) -> None:
        """Count newly recorded outcomes of live decisions (``RecordedOutcomes.cells``)."""
        try:
            for cell in cells:
                if cell.shadow:
                    continue
                labels = (
                    cell.model,
                    cell.version,
                    cell.served_by,
                    cell.group,
                    cell.stratum,
                    flag_label(cell.decision),
                    flag_label(cell.outcome),
                )
                self._outcomes.add(labels, cell.count, cell.amount_sum, cell.amount_sumsq)
        except Exception:
            log.warning("outcomes not counted in the metrics", exc_info=True)

    def exposition(self) -> bytes:
        """The counters in the Prometheus text format, without ``*_created`` series."""
        exposed = (*DECISION_COUNTERS, *SHADOW_COUNTERS, *OUTCOME_COUNTERS)
        return generate_latest(self.registry.restricted_registry(exposed))

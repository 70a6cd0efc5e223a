"""Ground truth joined to the gateway's live decisions, through :mod:`decisions.store`.

Outcomes arrive weeks after the decision they judge. Recording one moves its decision's
rollup cell from "unknown" to its verdict, so windows see it at once. An outcome, once
recorded, is final: sending it again changes nothing, and sending the opposite is
refused, all or nothing (the batch is one transaction).
"""

from __future__ import annotations

from sqlmodel import Session

from decisions.records import OutcomeRecord
from decisions.store import RecordedOutcomes, record_outcomes
from router.decision_log import SHADOW_MARK


class ShadowOutcomeError(ValueError):
    """Outcomes judge live decisions; a shadow score was never anyone's answer."""

    def __init__(self, index: int, decision_id: str) -> None:
        super().__init__(
            f"outcomes[{index}].decision_id: {decision_id!r} is a shadow score; record the "
            "outcome against the live decision it shadows; nothing was recorded"
        )
        self.index = index


def record(session: Session, model: str, outcomes: list[OutcomeRecord]) -> RecordedOutcomes:
    """Record ``outcomes`` against live decisions of ``model``, all or nothing.

    Raises :class:`ShadowOutcomeError`, or :mod:`decisions.store`'s ``UnknownDecision``
    and ``OutcomeConflict`` naming the record at fault.
    """
    for index, outcome in enumerate(outcomes):
        if SHADOW_MARK in outcome.decision_id:
            raise ShadowOutcomeError(index, outcome.decision_id)
    return record_outcomes(session, model, outcomes)

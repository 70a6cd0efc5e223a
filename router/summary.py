"""A window of live decisions as sufficient statistics, aggregated by the database.

A canary window can hold millions of decisions; the analysis needs only, per cell of
(side, version, group, stratum, decision, outcome), a count, the sum of the amounts
and the sum of their squares. One ``GROUP BY`` over the ``(model, at)`` index
computes them where the rows are, and what crosses the wire grows with the number of
cells, not with the traffic.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session, col

from contracts.routing import Serving
from router.decision_log import DecisionRow
from router.outcomes import OutcomeRow
from router.schemas import DecisionSummaryRow


def summarize_decisions(
    session: Session, model: str, since: datetime, until: datetime
) -> list[DecisionSummaryRow]:
    """Live decisions of ``model`` with ``since <= at < until``, one row per cell.

    Shadow scores are left out; ``outcome`` is the recorded ground truth, or None for
    decisions whose outcome has not arrived.
    """
    keys = (
        col(DecisionRow.served_by),
        col(DecisionRow.version),
        col(DecisionRow.group),
        col(DecisionRow.stratum),
        col(DecisionRow.decision),
        col(OutcomeRow.good),
    )
    amount = col(DecisionRow.amount)
    query = (
        select(*keys, func.count(), func.sum(amount), func.sum(amount * amount))
        .select_from(DecisionRow)
        .outerjoin(OutcomeRow, col(OutcomeRow.decision_id) == col(DecisionRow.id))
        .where(
            col(DecisionRow.model) == model,
            col(DecisionRow.at) >= since,
            col(DecisionRow.at) < until,
            col(DecisionRow.shadow).is_(False),
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    return [
        DecisionSummaryRow(
            served_by=Serving(served_by),
            version=version,
            group=group,
            stratum=stratum,
            decision=decision,
            outcome=outcome,
            count=count,
            amount_sum=amount_sum,
            amount_sumsq=amount_sumsq,
        )
        for (
            served_by,
            version,
            group,
            stratum,
            decision,
            outcome,
            count,
            amount_sum,
            amount_sumsq,
        ) in session.connection().execute(query)
    ]

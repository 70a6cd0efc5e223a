"""The decision-log provider: a window of live decisions from the reference router's log.

The router aggregates the window in SQL (``GET /v1/models/{model}/decisions/summary``)
and this provider only relabels its rows as canary arms: the candidate version
answering live is the CANDIDATE side, whatever the route serves (primary or the
rules-based fallback) is the STABLE side. Rows a different candidate version answered
(an earlier candidate still inside the window) belong to neither arm and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import httpx
import structlog

from config.targets import TargetResolver
from contracts.metrics import DecisionCell, DecisionWindow, Side
from contracts.routing import Serving
from contracts.targets import RouterRef
from metrics.provider import ProviderError
from router.client import RouterClient, RouterError
from router.schemas import DecisionSummaryRow

log = structlog.get_logger(__name__)

_STABLE_SERVING = frozenset({Serving.PRIMARY, Serving.FALLBACK})
_CellKey = tuple[Side, str, str, bool, bool | None]


class DecisionLogProvider:
    """Reads windows from a reference router; implements ``MetricsProvider``.

    The router's URL and credential come from the worker's declared routing targets
    (``targets``), never from the request: the token goes only to the URL it was
    declared with.
    """

    name = "decision_log"

    def __init__(
        self,
        targets: TargetResolver,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._targets = targets
        self._timeout = timeout
        self._transport = transport

    def __repr__(self) -> str:
        return f"{type(self).__name__}(targets={self._targets.ids})"

    async def window(
        self,
        router: RouterRef,
        model: str,
        candidate_version: str,
        since: datetime,
        until: datetime,
    ) -> DecisionWindow:
        """Live decisions of ``model`` with ``since <= at < until``, as canary cells.

        Raises :class:`~metrics.provider.ProviderError` with the router's reason when
        the router cannot be reached or refuses, and :class:`~config.targets.UnknownTarget`
        (before any request) when ``router`` names no declared target.
        """
        target = self._targets.resolve(router.target, router.url)
        router_url = target.url
        try:
            async with RouterClient(
                router_url, target.token or "", timeout=self._timeout, transport=self._transport
            ) as client:
                rows = await client.decision_summary(model, since, until)
        except RouterError as exc:
            status = "" if exc.status_code is None else f" ({exc.status_code})"
            raise ProviderError(
                f"the router at {router_url} did not summarise model {model!r}{status}: "
                f"{exc.reason}"
            ) from exc
        cells = to_cells(rows, model=model, candidate_version=candidate_version)
        return DecisionWindow(
            model=model,
            candidate_version=candidate_version,
            since=since,
            until=until,
            provider=self.name,
            cells=cells,
        )


def _side(row: DecisionSummaryRow, candidate_version: str) -> Side | None:
    if row.served_by in _STABLE_SERVING:
        return Side.STABLE
    if row.version == candidate_version:
        return Side.CANDIDATE
    return None


def to_cells(
    rows: Iterable[DecisionSummaryRow], *, model: str, candidate_version: str
) -> list[DecisionCell]:
    """The router's summary rows as cells of the two arms, versions of one side merged.

    The stable side can hold more than one version in a window (the primary before a
    flip to the fallback, the rules after it); its cells add up across them.
    """
    sums: dict[_CellKey, tuple[int, float, float]] = {}
    left_out_rows = left_out_decisions = 0
    other_versions: set[str] = set()
    for row in rows:
        side = _side(row, candidate_version)
        if side is None:
            left_out_rows += 1
            left_out_decisions += row.count
            other_versions.add(row.version)
            continue
        key = (side, row.group, row.stratum, row.decision, row.outcome)
        count, amount_sum, amount_sumsq = sums.get(key, (0, 0.0, 0.0))
        sums[key] = (
            count + row.count,
            amount_sum + row.amount_sum,
            amount_sumsq + row.amount_sumsq,
        )
    if left_out_rows:
        log.debug(
            "decisions of other candidate versions left out of the window",
            model=model,
            candidate_version=candidate_version,
            other_versions=sorted(other_versions),
            rows=left_out_rows,
            decisions=left_out_decisions,
        )
    return [
        DecisionCell(
            side=side,
            group=group,
            stratum=stratum,
            approved=approved,
            outcome=outcome,
            count=count,
            amount_sum=amount_sum,
            amount_sumsq=amount_sumsq,
        )
        for (side, group, stratum, approved, outcome), (count, amount_sum, amount_sumsq) in (
            sums.items()
        )
    ]

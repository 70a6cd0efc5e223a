"""The Prometheus provider: a window of live decisions from scraped decision counters.

A gateway (Fairlane's, or a team's own service) counts every live decision, its amount
and the amount's square per cell in the convention of ``docs/decision-metrics.md``
(:mod:`decisions.prometheus` writes it); Prometheus scrapes them; this provider asks
Prometheus' HTTP API (``/api/v1/query`` at ``time=until``) how much each counter grew
over the window, summed ``by`` cell across router replicas, and relabels the cells as
canary arms exactly as the decision-log provider does (primary and fallback are the
STABLE side, the candidate version answering live is the CANDIDATE side, an earlier
candidate is left out, shadow scores are on counters of their own and never read).

How much a counter grew, and why not plain ``increase()``
---------------------------------------------------------
``increase(c[w])`` extrapolates from the first and last samples *inside* the range to
the range's edges, and a series born inside the range has no sample at 0 before its
first one: the decisions counted before its first scrape are lost, and a sparse cell
(one decision, seen once) counts nothing at all. A cell per group x stratum x decision
is sparse by nature, so plain ``increase()`` undercounts the very cells a fairness
test needs. The query therefore takes, per series, the counter at ``until`` minus the
counter at ``since`` (``c - (c offset w or c * 0)``: a series absent at ``since`` was
born inside the window and started at 0), which is exact at scrape granularity, and
falls back to ``increase()`` only for series whose counter reset inside the window (a
router restart) or that are gone at ``until``, where the difference would be wrong.

What is approximate, honestly:

* Scrape granularity. A counter is known only at scrapes, so a decision is seen at the
  first scrape after it: the window counts what was scraped in ``(since, until]``, a
  decision made up to one scrape interval before ``since`` can be in it and one made up
  to an interval before ``until`` can be missing. A window shorter than one scrape
  interval may see nothing; the edges are exact only when traffic is quiet around them.
* Resets. Where the fallback to ``increase()`` applies, its extrapolation gives
  fractional counts and loses what a reborn series counted before its first scrape.
  Counts are rounded to whole decisions; cells that round to 0 are dropped.
* Outcomes are counted when they are recorded, not when their decision was made. The
  decision log joins each outcome to its decision; here a window's outcome cells hold
  the outcomes recorded *during* it. The two agree when outcomes arrive inside the
  window of their decisions; when they arrive weeks later (as ground truth does) they
  land in a later window. A cell's outcomes are capped at its decisions (scaled down
  pro rata if more arrived), so the cell totals are always the window's decisions,
  and the decisions without a recorded outcome make the ``outcome=None`` cell.
* ``router`` is not used: Prometheus names the gateway by its scrape target, and
  replicas serving one model are summed, which is what a load-balanced gateway wants.

Label names are the convention's (``model``, ``version``, ``served_by``, ``group``,
``stratum``, ``decision``, ``outcome``) unless the model's manifest maps them to the
team's own (``decisions.labels``); metric names are the convention's.

Cost: what crosses the wire grows with the cells, not the traffic, but Prometheus reads
every sample of the model's series over the window for ``resets()``/``increase()`` (as
plain ``increase()`` would): window / scrape interval x series. A week at 15 s scrapes
over a few thousand cells is tens of millions of samples, near Prometheus' default
``--query.max-samples`` (50M); a refused query is a ProviderError naming the limit.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog

from contracts.metrics import DecisionCell, DecisionWindow, Side
from contracts.routing import Serving
from contracts.targets import RouterRef
from decisions.prometheus import DECISION_COUNTERS, LABELS, OUTCOME_COUNTERS
from metrics.provider import ProviderError

log = structlog.get_logger(__name__)

CELL_LABELS = tuple(name for name in LABELS if name != "model")
"""The labels a cell is keyed by, in the convention's names (``model`` selects)."""
_STABLE_ROUTES = frozenset({Serving.PRIMARY.value, Serving.FALLBACK.value})

_Key = tuple[str, ...]  # CELL_LABELS values
_CellKey = tuple[Side, str, str, bool, bool | None]


@dataclass(slots=True)
class CellSums:
    """How much a cell's three counters grew (a count, an amount sum, a sum of squares)."""

    count: float = 0.0
    amount_sum: float = 0.0
    amount_sumsq: float = 0.0

    def add(self, other: CellSums, scale: float = 1.0) -> None:
        self.count += other.count * scale
        self.amount_sum += other.amount_sum * scale
        self.amount_sumsq += other.amount_sumsq * scale


def promql_string(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class LabelNames:
    """The convention's label names, or the team's where ``mapping`` renames them."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self._mapping = dict(mapping or {})

    def __call__(self, name: str) -> str:
        return self._mapping.get(name, name)


def growth_query(
    counter: str,
    model: str,
    window_ms: int,
    *,
    outcome: bool = False,
    labels: LabelNames | None = None,
) -> str:
    """PromQL: how much ``counter`` grew per cell over the ``window_ms`` before the query time.

    Exact difference where the series is continuous, ``increase()`` where it reset or
    vanished (see the module docstring).
    """
    named = labels or LabelNames()
    series = f"{counter}{{{named('model')}={promql_string(model)}}}"
    window = f"{window_ms}ms"
    continuous = (
        f"({series} - ({series} offset {window} or {series} * 0))"
        f" unless resets({series}[{window}]) > 0"
    )
    by = ", ".join(named(n) for n in ((*CELL_LABELS, "outcome") if outcome else CELL_LABELS))
    return f"sum by ({by}) (({continuous}) or increase({series}[{window}]))"


Sample = tuple[dict[str, str], float]


class PrometheusProvider:
    """Reads windows from the Prometheus server at ``base_url``; implements ``MetricsProvider``.

    ``labels`` maps the convention's label names to the ones the series carry.
    """

    name = "prometheus"

    def __init__(
        self,
        base_url: str,
        *,
        labels: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._labels = LabelNames(labels)
        self._timeout = timeout
        self._transport = transport

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url!r})"

    async def window(
        self,
        router: RouterRef,
        model: str,
        candidate_version: str,
        since: datetime,
        until: datetime,
    ) -> DecisionWindow:
        """Live decisions of ``model`` scraped in ``(since, until]``, as canary cells.

        Raises :class:`~metrics.provider.ProviderError` with Prometheus' reason when it
        cannot be reached or refuses a query.
        """
        window_ms = round((until - since).total_seconds() * 1000)
        cells: list[DecisionCell] = []
        if window_ms > 0:
            async with self._client() as client:
                answers = await asyncio.gather(
                    *(
                        self._growth(client, counter, model, window_ms, until, outcome=outcome)
                        for counters, outcome in (
                            (DECISION_COUNTERS, False),
                            (OUTCOME_COUNTERS, True),
                        )
                        for counter in counters
                    )
                )
            cells = to_cells(
                _side_by_side(*answers[:3]),
                _side_by_side(*answers[3:]),
                model=model,
                candidate_version=candidate_version,
            )
        return DecisionWindow(
            model=model,
            candidate_version=candidate_version,
            since=since,
            until=until,
            provider=self.name,
            cells=cells,
        )

    async def vector(self, query: str, at: datetime) -> list[Sample]:
        """One instant PromQL query evaluated at ``at``: its samples as (labels, value)."""
        async with self._client() as client:
            return await self._vector(client, query, at)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self._base_url, timeout=self._timeout, transport=self._transport
        )

    async def _growth(
        self,
        client: httpx.AsyncClient,
        counter: str,
        model: str,
        window_ms: int,
        until: datetime,
        *,
        outcome: bool,
    ) -> dict[_Key, float]:
        """Growth of ``counter`` per cell, keyed by CELL_LABELS values (+ ``outcome``)."""
        names = [self._labels(n) for n in ((*CELL_LABELS, "outcome") if outcome else CELL_LABELS)]
        query = growth_query(counter, model, window_ms, outcome=outcome, labels=self._labels)
        return {
            tuple(labels.get(name, "") for name in names): value
            for labels, value in await self._vector(client, query, until)
        }

    async def _vector(self, client: httpx.AsyncClient, query: str, at: datetime) -> list[Sample]:
        where = f"Prometheus at {self._base_url}"
        try:
            response = await client.get(
                "/api/v1/query", params={"query": query, "time": f"{at.timestamp():.3f}"}
            )
        except httpx.HTTPError as exc:
            raise ProviderError(f"{where} is unreachable: {type(exc).__name__}: {exc}") from exc
        body = _json(response)
        if body.get("status") != "success":
            reason = body.get("error") or response.text or response.reason_phrase
            kind = body.get("errorType") or f"HTTP {response.status_code}"
            raise ProviderError(f"{where} refused the query ({kind}): {reason}; query: {query}")
        for warning in body.get("warnings") or ():
            log.warning("prometheus warned about a query", warning=warning, query=query)
        data = body.get("data") or {}
        if data.get("resultType") != "vector":
            raise ProviderError(
                f"{where} answered a {data.get('resultType')!r}, not an instant vector; "
                f"query: {query}"
            )
        samples: list[Sample] = []
        for sample in data.get("result", []):
            labels, value = dict(sample["metric"]), float(sample["value"][1])
            if math.isfinite(value):
                samples.append((labels, value))
            else:
                log.warning("non-finite sample left out", labels=labels, query=query)
        return samples


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _side_by_side(
    counts: dict[_Key, float], amounts: dict[_Key, float], squares: dict[_Key, float]
) -> dict[_Key, CellSums]:
    """The three counters of a cell together, per label values (the count's cells rule)."""
    return {
        key: CellSums(count, amounts.get(key, 0.0), squares.get(key, 0.0))
        for key, count in counts.items()
    }


def _side(route: str, version: str, candidate_version: str) -> Side | None:
    if route in _STABLE_ROUTES:
        return Side.STABLE
    if route == Serving.CANDIDATE.value and version == candidate_version:
        return Side.CANDIDATE
    return None


def _capped(recorded: dict[bool, int], decided: int) -> dict[bool, int]:
    """Outcome counts cut down pro rata (whole decisions) to at most ``decided`` in all."""
    total = sum(recorded.values())
    if total <= decided:
        return recorded
    capped: dict[bool, int] = {}
    for verdict in sorted(recorded)[:-1]:
        capped[verdict] = decided * recorded[verdict] // total
    last = sorted(recorded)[-1]
    capped[last] = decided - sum(capped.values())
    return capped


def to_cells(
    decisions: Mapping[_Key, CellSums],
    outcomes: Mapping[_Key, CellSums],
    *,
    model: str,
    candidate_version: str,
) -> list[DecisionCell]:
    """Counter growth per label values as cells of the two arms, versions of a side merged.

    ``outcomes`` is keyed by the decision's label values plus the outcome (``true``/``false``).
    """
    merged: dict[_CellKey, CellSums] = {}
    left_out: set[str] = set()

    def add(key: _CellKey, sums: CellSums, scale: float = 1.0) -> None:
        merged.setdefault(key, CellSums()).add(sums, scale)

    for labels, sums in decisions.items():
        version, served_by, group, stratum, decision_label = labels
        side = _side(served_by, version, candidate_version)
        if side is None:
            left_out.add(version)
            continue
        known = {
            verdict: outcomes[(*labels, name)]
            for verdict, name in ((True, "true"), (False, "false"))
            if round(outcomes.get((*labels, name), CellSums()).count) >= 1
        }
        targets = _capped({v: round(s.count) for v, s in known.items()}, round(sums.count))
        unknown = CellSums()
        unknown.add(sums)
        # no binary decision ("none"): every decision is granted its amount
        cell = (side, group, stratum, decision_label != "false")
        for verdict, outcome_sums in known.items():
            share = targets[verdict] / outcome_sums.count
            add((*cell, verdict), outcome_sums, share)
            unknown.add(outcome_sums, -share)
        add((*cell, None), unknown)
    if left_out:
        log.debug(
            "decisions of other candidate versions left out of the window",
            model=model,
            candidate_version=candidate_version,
            other_versions=sorted(left_out),
        )
    cells = []
    for (side, group, stratum, approved, outcome), sums in merged.items():
        count = round(sums.count)
        if count < 1:
            continue
        cells.append(
            DecisionCell(
                side=side,
                group=group,
                stratum=stratum,
                approved=approved,
                outcome=outcome,
                count=count,
                amount_sum=sums.amount_sum,
                amount_sumsq=max(0.0, sums.amount_sumsq),
            )
        )
    return cells

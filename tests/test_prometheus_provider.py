"""The Prometheus provider against a real Prometheus scraping decision counters.

Two exporters count the same decisions in the convention of docs/decision-metrics.md
(:mod:`decisions.prometheus`): one with the convention's label names, one with a
team's own names, which its manifest maps back. Both are read through Prometheus and
must give the cells the decision store sums for the same decisions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI, Header, HTTPException, Response
from sqlmodel import Session

from config.targets import GATEWAY
from contracts.metrics import DecisionCell, Side
from contracts.routing import Serving
from contracts.targets import RouterRef
from decisions.prometheus import DECISIONS, DecisionCounters
from decisions.records import DecisionRecord, OutcomeRecord
from decisions.store import append, record_outcomes, window
from decisions.tables import create_decision_tables
from metrics.prometheus import (
    CellSums,
    LabelNames,
    PrometheusProvider,
    growth_query,
    promql_string,
    to_cells,
)
from metrics.provider import MetricsProvider, ProviderError
from stack.loopback import free_port
from store.db import make_engine
from tests.fixtures.monitoring_programs import running_prometheus, scraped_after
from tests.fixtures.services import serve

MODEL = "hiring"
TOKEN = "scrape-token"
CellKey = tuple[Side, str, str, bool, bool | None]
GATEWAY_REF = RouterRef(target=GATEWAY)
TEAM_LABELS = {"model": "app", "served_by": "route", "group": "cohort", "decision": "hired"}


def cells_by_key(cells: list[DecisionCell]) -> dict[CellKey, tuple[int, float, float]]:
    keyed: dict[CellKey, tuple[int, float, float]] = {}
    for cell in cells:
        key = (cell.side, cell.group, cell.stratum, cell.approved, cell.outcome)
        assert key not in keyed, f"cell {key} given twice"
        keyed[key] = (cell.count, cell.amount_sum, cell.amount_sumsq)
    return keyed


def test_it_is_a_metrics_provider() -> None:
    provider: MetricsProvider = PrometheusProvider("http://prometheus:9090/")
    assert provider.name == "prometheus"


def test_label_values_are_escaped_in_promql() -> None:
    assert promql_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    query = growth_query(DECISIONS, 'x"} or vector(1) #', 60_000)
    assert 'model="x\\"} or vector(1) #"' in query


def test_outcomes_split_a_cell_and_never_outnumber_its_decisions() -> None:
    """Outcomes count when recorded: late ones for older decisions are capped pro rata."""
    cell = ("v1", "primary", "B", "senior", "true")
    late = ("v1", "fallback", "A", "senior", "true")
    decisions = {cell: CellSums(10, 50_000.0, 260_000_000.0), late: CellSums(3, 9_000.0, 27e6)}
    outcomes = {
        (*cell, "true"): CellSums(4, 20_000.0, 100_000_000.0),
        (*cell, "false"): CellSums(2, 12_000.0, 72_000_000.0),
        (*late, "true"): CellSums(4, 12_000.0, 36e6),
        (*late, "false"): CellSums(2, 6_000.0, 18e6),
    }
    cells = cells_by_key(to_cells(decisions, outcomes, model=MODEL, candidate_version="v2"))
    assert cells == {
        (Side.STABLE, "B", "senior", True, True): (4, 20_000.0, 100_000_000.0),
        (Side.STABLE, "B", "senior", True, False): (2, 12_000.0, 72_000_000.0),
        (Side.STABLE, "B", "senior", True, None): (4, 18_000.0, 88_000_000.0),
        # 6 outcomes recorded for 3 decisions of the window: cut to 1 bad and 2 good
        (Side.STABLE, "A", "senior", True, True): (2, 6_000.0, 18e6),
        (Side.STABLE, "A", "senior", True, False): (1, 3_000.0, 9e6),
    }


def test_a_mapped_label_is_what_the_queries_select_and_sum_by() -> None:
    query = growth_query(DECISIONS, MODEL, 60_000, labels=LabelNames(TEAM_LABELS))
    assert 'app="hiring"' in query and "model=" not in query
    assert "sum by (version, route, cohort, stratum, hired)" in query


@contextmanager
def exporter(counters: DecisionCounters) -> Iterator[str]:
    app = FastAPI()

    @app.get("/metrics")
    def metrics(authorization: str = Header("")) -> Response:
        if authorization != f"Bearer {TOKEN}":
            raise HTTPException(401)
        return Response(counters.exposition(), media_type="text/plain; version=0.0.4")

    with serve(app, free_port()) as url:
        yield f"{url}/metrics"


def traffic(prefix: str, n: int, seed: int) -> list[DecisionRecord]:
    rng = random.Random(seed)
    made = []
    for i in range(n):
        served_by = rng.choice([Serving.PRIMARY, Serving.FALLBACK, Serving.CANDIDATE])
        version = {Serving.PRIMARY: "v1", Serving.FALLBACK: "rules"}.get(served_by) or rng.choice(
            ["v2", "v3"]
        )
        decision = rng.random() < 0.6
        made.append(
            DecisionRecord(
                decision_id=f"{prefix}-{i}",
                model=MODEL,
                version=version,
                served_by=served_by,
                shadow=rng.random() < 0.1,
                at=datetime.now(UTC),
                group=rng.choice(["race=a|sex=f", "race=b|sex=m"]),
                stratum=rng.choice(["junior", "senior"]),
                decision=decision,
                amount=round(rng.uniform(10, 90), 2) if decision else 0.0,
            )
        )
    return made


async def test_prometheus_reads_the_cells_the_decision_store_sums(tmp_path: Path) -> None:
    plain, mapped = DecisionCounters(), DecisionCounters(labels=TEAM_LABELS)
    engine = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    create_decision_tables(engine)
    inside = make_engine(f"sqlite:///{tmp_path / 'inside.db'}")  # the window's decisions only
    create_decision_tables(inside)

    def count(records: list[DecisionRecord], *, in_window: bool) -> None:
        with Session(engine) as session:
            append(session, records)
        if in_window:
            with Session(inside) as session:
                append(session, records)
        for record in records:
            plain.count_decision(record)
            mapped.count_decision(record)

    with exporter(plain) as plain_url, exporter(mapped) as mapped_url:
        targets = [(plain_url, TOKEN), (mapped_url, TOKEN)]
        async with running_prometheus(targets, scrape_interval="1s") as prometheus:
            # Before the window: series already exist at `since`, and the provider must
            # subtract what they counted before it.
            count(traffic("before", 60, seed=1), in_window=False)
            await scraped_after(prometheus, datetime.now(UTC))
            since = datetime.now(UTC)

            live = traffic("live", 300, seed=2)
            count(live, in_window=True)
            outcomes = [
                OutcomeRecord(decision_id=r.decision_id, outcome=i % 3 != 0)
                for i, r in enumerate(live[::2])
            ]
            for database in (engine, inside):
                with Session(database) as session:
                    recorded = record_outcomes(session, MODEL, outcomes)
                    again = record_outcomes(session, MODEL, outcomes)  # a resent feed
            assert again.recorded == 0
            plain.count_outcomes(recorded.cells)
            mapped.count_outcomes(recorded.cells)
            plain.count_outcomes(again.cells)  # nothing newly recorded: counts nothing

            await scraped_after(prometheus, datetime.now(UTC))
            until = datetime.now(UTC)
            from_plain = await PrometheusProvider(prometheus).window(
                GATEWAY_REF, MODEL, "v3", since, until
            )
            from_mapped = await PrometheusProvider(prometheus, labels=TEAM_LABELS).window(
                GATEWAY_REF, MODEL, "v3", since, until
            )
            before = await PrometheusProvider(prometheus).window(
                GATEWAY_REF, MODEL, "v3", since - timedelta(hours=1), since
            )

    with Session(inside) as session:
        expected = window(session, MODEL, "v3", since - timedelta(hours=1), until)
    assert before.decisions == sum(
        1 for r in traffic("before", 60, seed=1)
        if not r.shadow and (r.served_by is not Serving.CANDIDATE or r.version == "v3")
    )  # fmt: skip
    assert from_plain.provider == "prometheus"
    assert {cell.side for cell in expected.cells} == {Side.STABLE, Side.CANDIDATE}
    for read in (from_plain, from_mapped):
        actual, wanted = cells_by_key(read.cells), cells_by_key(expected.cells)
        assert actual.keys() == wanted.keys()
        for key, (n, total, squares) in wanted.items():
            assert actual[key][0] == n, key
            # Sums travel as float64 through the text format and a subtraction of two
            # counter readings: equal up to rounding in the last bits.
            assert actual[key][1:] == pytest.approx((total, squares), rel=1e-9, abs=1e-6), key


async def test_an_unreachable_prometheus_is_a_provider_error() -> None:
    provider = PrometheusProvider(f"http://127.0.0.1:{free_port()}")
    now = datetime.now(UTC)
    with pytest.raises(ProviderError, match="unreachable"):
        await provider.window(GATEWAY_REF, MODEL, "v2", now - timedelta(minutes=5), now)


async def test_a_refused_query_is_a_provider_error_with_prometheus_reason() -> None:
    now = datetime.now(UTC)
    async with running_prometheus([]) as prometheus:
        provider = PrometheusProvider(prometheus)
        with pytest.raises(ProviderError, match=r"\(bad_data\).*parse error"):
            await provider.vector("sum by (", now)
        # Not a Prometheus at all: the HTTP status is the reason.
        with pytest.raises(ProviderError, match="HTTP 404"):
            await PrometheusProvider(f"{prometheus}/nowhere").window(
                GATEWAY_REF, MODEL, "v2", now - timedelta(minutes=5), now
            )


async def test_an_error_status_from_a_window_query_is_a_provider_error() -> None:
    """A Prometheus that refuses to load the samples a window needs (a query limit)."""
    now = datetime.now(UTC)
    async with running_prometheus([], extra_args=["--query.max-samples=0"]) as prometheus:
        provider = PrometheusProvider(prometheus)
        with pytest.raises(ProviderError, match=r"\(execution\).*too many samples") as refused:
            await provider.window(GATEWAY_REF, MODEL, "v2", now - timedelta(minutes=5), now)
    assert prometheus in str(refused.value)

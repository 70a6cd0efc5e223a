"""The Prometheus provider against a real Prometheus scraping a real router.

The same traffic is read back twice, through the router's decision log and through
the counters Prometheus scraped, and must give the same cells and the same disparity.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from fastapi import FastAPI

from config.targets import GATEWAY, TargetResolver
from contracts.metrics import DecisionCell, Side
from contracts.routing import Serving
from contracts.targets import RouterRef
from demo.canary import inject_regression
from demo.dataset import generate_applicants
from demo.scenario import applicant_from
from fairness.live import LiveMetric, LiveThresholds, analyse_window
from metrics.decision_log import DecisionLogProvider
from metrics.prometheus import CellSums, PrometheusProvider, growth_query, promql_string, to_cells
from metrics.provider import MetricsProvider, ProviderError
from router.client import RouterClient
from router.metrics import DECISIONS
from store.artifacts import ArtifactStore
from tests import test_router as shared
from tests.fixtures.monitoring_programs import running_prometheus, scraped_after
from tests.fixtures.services import free_port
from tests.test_router import MODEL, TOKEN, served, update

# The router fixtures of test_router.py (pytest finds fixtures by name in a module).
app, artifacts, deployed, router, settings, store, _artifacts_dir = (
    shared.app,
    shared.artifacts,
    shared.deployed,
    shared.router,
    shared.settings,
    shared.store,
    shared._artifacts_dir,  # autouse: this module's routers open the shared artifacts directory
)

CellKey = tuple[Side, str, str, bool, bool | None]
# Small enough for a few hundred decisions to give the conditional disparity an estimate.
THRESHOLDS = LiveThresholds(min_samples_per_group=20, min_stratum_count=5)

GATEWAY_REF = RouterRef(target=GATEWAY)


def dense_applicants(prefix: str, per_group_and_stratum: int) -> pd.DataFrame:
    """Applicants of the four strata both groups fill best, so strata have both groups."""
    pool = generate_applicants(6_000, 11)
    pool["stratum"] = pool["income_band"] + "|" + pool["credit_band"]
    counts = pool.groupby(["stratum", "group"]).size().unstack()
    strata = counts.min(axis=1).sort_values(ascending=False).index[:4]
    chosen = (
        pool[pool["stratum"].isin(strata)]
        .groupby(["stratum", "group"])
        .head(per_group_and_stratum)
        .reset_index(drop=True)
    )
    chosen["applicant_id"] = [f"{prefix}-{i}" for i in range(len(chosen))]
    return chosen


async def send(router: RouterClient, applicants: pd.DataFrame) -> list[int]:
    gate = asyncio.Semaphore(8)

    async def one(row: object) -> int:
        async with gate:
            return (await router.decide(MODEL, applicant_from(row))).decision_id

    return list(await asyncio.gather(*(one(r) for r in applicants.itertuples(index=False))))


def cells_by_key(cells: list[DecisionCell]) -> dict[CellKey, tuple[int, float, float]]:
    keyed: dict[CellKey, tuple[int, float, float]] = {}
    for cell in cells:
        key = (cell.side, cell.group, cell.stratum, cell.decision, cell.outcome)
        assert key not in keyed, f"cell {key} given twice"
        keyed[key] = (cell.count, cell.amount_sum, cell.amount_sumsq)
    return keyed


def per_group(cells: list[DecisionCell]) -> dict[tuple[Side, str], int]:
    totals: dict[tuple[Side, str], int] = {}
    for cell in cells:
        totals[(cell.side, cell.group)] = totals.get((cell.side, cell.group), 0) + cell.count
    return totals


def test_it_is_a_metrics_provider() -> None:
    provider: MetricsProvider = PrometheusProvider("http://prometheus:9090/")
    assert provider.name == "prometheus"


def test_label_values_are_escaped_in_promql() -> None:
    assert promql_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    query = growth_query(DECISIONS, 'x"} or vector(1) #', 60_000)
    assert 'model="x\\"} or vector(1) #"' in query


def test_outcomes_split_a_cell_and_never_outnumber_its_decisions() -> None:
    """Outcomes count when recorded: late ones for older decisions are capped pro rata."""
    cell = ("v1", "primary", "B", "50-60k", "5-10y", "true")
    late = ("v1", "fallback", "A", "50-60k", "5-10y", "true")
    decisions = {cell: CellSums(10, 50_000.0, 260_000_000.0), late: CellSums(3, 9_000.0, 27e6)}
    outcomes = {
        (*cell, "good"): CellSums(4, 20_000.0, 100_000_000.0),
        (*cell, "bad"): CellSums(2, 12_000.0, 72_000_000.0),
        (*late, "good"): CellSums(4, 12_000.0, 36e6),
        (*late, "bad"): CellSums(2, 6_000.0, 18e6),
    }
    cells = cells_by_key(to_cells(decisions, outcomes, model=MODEL, candidate_version="v2"))
    stratum = "50-60k|5-10y"
    assert cells == {
        (Side.STABLE, "B", stratum, True, True): (4, 20_000.0, 100_000_000.0),
        (Side.STABLE, "B", stratum, True, False): (2, 12_000.0, 72_000_000.0),
        (Side.STABLE, "B", stratum, True, None): (4, 18_000.0, 88_000_000.0),
        # 6 outcomes recorded for 3 decisions of the window: cut to 1 bad and 2 good
        (Side.STABLE, "A", stratum, True, True): (2, 6_000.0, 18e6),
        (Side.STABLE, "A", stratum, True, False): (1, 3_000.0, 9e6),
    }


async def test_prometheus_reads_the_disparity_the_decision_log_shows(
    app: FastAPI, deployed: RouterClient, store: ArtifactStore
) -> None:
    with served(app) as url:
        async with running_prometheus([(url, TOKEN)], scrape_interval="1s") as prometheus:
            # Before the window: the primary answers, so series already exist at `since`
            # and the provider must subtract what they counted before it.
            await send(deployed, dense_applicants("before", 4))
            await scraped_after(prometheus, datetime.now(UTC))
            since = datetime.now(UTC)

            # An earlier candidate (v2), left out of a window judging v3.
            await deployed.set_route(MODEL, update(1, candidate_version="v2", canary_percent=40))
            await send(deployed, dense_applicants("early", 6))
            # The injected regression: v3 is the biased model under a candidate's name,
            # ramped against the fallback with the contained model scoring in shadow.
            await inject_regression(deployed, store, MODEL, "v3")
            await deployed.set_route(
                MODEL,
                update(
                    2,
                    serving=Serving.FALLBACK,
                    shadow_versions=["v1"],
                    candidate_version="v3",
                    canary_percent=50,
                ),
            )
            ids = await send(deployed, dense_applicants("live", 40))
            outcomes = {i: i % 3 != 0 for i in ids[::2]}
            await deployed.record_outcomes(MODEL, outcomes)
            await deployed.record_outcomes(MODEL, outcomes)  # a replayed feed counts once

            await scraped_after(prometheus, datetime.now(UTC))
            until = datetime.now(UTC)
            from_log = await DecisionLogProvider(TargetResolver.single(url, TOKEN)).window(
                GATEWAY_REF, MODEL, "v3", since, until
            )
            from_prometheus = await PrometheusProvider(prometheus).window(
                GATEWAY_REF, MODEL, "v3", since, until
            )
            # The window before: series born in it are counted from 0.
            before = await PrometheusProvider(prometheus).window(
                GATEWAY_REF, MODEL, "v3", since - timedelta(hours=1), since
            )

    assert before.decisions == 4 * 2 * 4  # per group and stratum x groups x strata
    assert {cell.side for cell in before.cells} == {Side.STABLE}

    assert from_prometheus.provider == "prometheus"
    assert {cell.side for cell in from_log.cells} == {Side.STABLE, Side.CANDIDATE}
    # The counters were read at scrapes that bracket all the window's traffic and none
    # of the traffic before it, so the counts are not estimates: they must be equal.
    assert per_group(from_prometheus.cells) == per_group(from_log.cells)
    expected, actual = cells_by_key(from_log.cells), cells_by_key(from_prometheus.cells)
    assert actual.keys() == expected.keys()
    for key, (count, total, squares) in expected.items():
        assert actual[key][0] == count, key
        # Sums of limits travel as float64 through the text format and a subtraction of
        # two counter readings: equal up to rounding in the last bits.
        assert actual[key][1:] == pytest.approx((total, squares), rel=1e-9), key

    def conditional_gap(cells: list[DecisionCell]) -> float:
        analysis = analyse_window(cells, THRESHOLDS, alpha=0.05)
        [result] = [r for r in analysis.results if r.metric is LiveMetric.CONDITIONAL_DISPARITY]
        assert result.estimate is not None, result.reason
        return result.estimate

    gap = conditional_gap(from_log.cells)
    assert gap > 0.10  # the injected regression is visible...
    assert conditional_gap(from_prometheus.cells) == pytest.approx(gap, abs=1e-9)  # ...in both


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

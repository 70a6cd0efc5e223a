"""The router's /metrics: token-protected, and its counters agree with the decision log.

The counters are checked against a recomputation from the full decision log, shadows
and outcomes included, after real decisions and outcomes over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from config.settings import Settings
from router.app import create_app
from router.client import OutcomeConflictError, RouterClient
from router.metrics import (
    DECISION_AMOUNT,
    DECISION_AMOUNT_SQUARES,
    DECISION_LABELS,
    DECISIONS,
    OUTCOME_AMOUNT,
    OUTCOME_AMOUNT_SQUARES,
    OUTCOME_LABELS,
    OUTCOMES,
    SHADOW_AMOUNT,
    SHADOW_AMOUNT_SQUARES,
    SHADOW_SCORES,
)
from router.schemas import DecisionRecord
from tests import test_router as shared
from tests.fixtures.gateway import deploy_credit
from tests.test_router import MODEL, TOKEN, applicant, client_for, served
from tests.test_router_outcomes import incident_traffic

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

Labels = tuple[str, ...]
Sums = tuple[float, float, float]


async def scrape(app: FastAPI, authorization: str | None = f"Bearer {TOKEN}") -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://r"
    ) as raw:
        return await raw.get("/metrics", headers=headers)


async def counters(
    app: FastAPI, names: tuple[str, str, str], labels: tuple[str, ...]
) -> dict[Labels, Sums]:
    """The three counters of a cell, side by side, per label values."""
    response = await scrape(app)
    assert response.status_code == 200, response.text
    values: dict[str, dict[Labels, float]] = {name: {} for name in names}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name in values:
                values[sample.name][tuple(sample.labels[k] for k in labels)] = sample.value
    count, amount, squares = (values[name] for name in names)
    return {key: (n, amount[key], squares[key]) for key, n in count.items()}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def expected_decisions(records: Iterable[DecisionRecord], *, shadow: bool) -> dict[Labels, Sums]:
    cells: dict[Labels, Sums] = {}
    for r in records:
        if r.shadow is not shadow:
            continue
        key = (
            r.model,
            r.version,
            r.served_by.value,
            r.group,
            r.income_band,
            r.credit_band,
            _flag(r.decision),
        )
        n, total, squares = cells.get(key, (0, 0.0, 0.0))
        cells[key] = (n + 1, total + r.amount, squares + r.amount**2)
    return cells


def expected_outcomes(
    records: Iterable[DecisionRecord], outcomes: Mapping[int, bool]
) -> dict[Labels, Sums]:
    cells: dict[Labels, Sums] = {}
    for r in records:
        if r.shadow or r.id not in outcomes:
            continue
        key = (
            r.model,
            r.version,
            r.served_by.value,
            r.group,
            r.income_band,
            r.credit_band,
            _flag(r.decision),
            "good" if outcomes[r.id] else "bad",
        )
        n, total, squares = cells.get(key, (0, 0.0, 0.0))
        cells[key] = (n + 1, total + r.amount, squares + r.amount**2)
    return cells


def assert_same(actual: dict[Labels, Sums], expected: dict[Labels, Sums]) -> None:
    assert actual.keys() == expected.keys()
    for key, (count, total, squares) in expected.items():
        assert actual[key][0] == count, key
        assert actual[key][1:] == pytest.approx((total, squares), rel=1e-12), key


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
async def test_metrics_need_the_routers_token(app: FastAPI, authorization: str | None) -> None:
    response = await scrape(app, authorization)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_metrics_are_prometheus_text(app: FastAPI, deployed: RouterClient) -> None:
    await deployed.decide(MODEL, applicant("a-1"))
    response = await scrape(app)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert f"# TYPE {DECISIONS} counter" in response.text
    assert "_created" not in response.text  # no creation-time gauge beside every series
    assert TOKEN not in response.text


async def test_decisions_and_shadow_scores_are_counted_by_cell(
    app: FastAPI, deployed: RouterClient
) -> None:
    await incident_traffic(deployed, MODEL)
    log = await deployed.decisions(MODEL, include_shadow=True, limit=100_000)
    assert any(r.shadow for r in log)

    live = await counters(
        app, (DECISIONS, DECISION_AMOUNT, DECISION_AMOUNT_SQUARES), DECISION_LABELS
    )
    shadow = await counters(
        app, (SHADOW_SCORES, SHADOW_AMOUNT, SHADOW_AMOUNT_SQUARES), DECISION_LABELS
    )
    assert_same(live, expected_decisions(log, shadow=False))
    assert_same(shadow, expected_decisions(log, shadow=True))
    assert {key[2] for key in live} == {"primary", "candidate", "fallback"}


async def test_outcomes_are_counted_once_when_recorded(
    app: FastAPI, deployed: RouterClient
) -> None:
    ids = await incident_traffic(deployed, MODEL, n=20)
    names = (OUTCOMES, OUTCOME_AMOUNT, OUTCOME_AMOUNT_SQUARES)
    first = {i: i % 3 != 0 for i in ids[: len(ids) // 2]}
    assert (await deployed.record_outcomes(MODEL, first)).recorded == len(first)

    # A replayed feed records nothing and counts nothing.
    assert (await deployed.record_outcomes(MODEL, first)).recorded == 0
    # A contradiction is refused whole, the new outcome in its batch included.
    newcomer = ids[-1]
    with pytest.raises(OutcomeConflictError):
        await deployed.record_outcomes(MODEL, {ids[0]: not first[ids[0]], newcomer: True})
    # A batch of old and new outcomes counts only the new ones.
    second = {**dict(list(first.items())[:5]), **{i: True for i in ids[len(ids) // 2 :]}}
    recorded = await deployed.record_outcomes(MODEL, second)
    assert (recorded.recorded, recorded.unchanged) == (len(ids) - len(ids) // 2, 5)

    log = await deployed.decisions(MODEL, include_shadow=True, limit=100_000)
    assert_same(await counters(app, names, OUTCOME_LABELS), expected_outcomes(log, first | second))


async def test_concurrent_identical_batches_are_counted_once_on_postgres(
    postgres_url: str, tmp_path: Path, artifacts: dict[str, str]
) -> None:
    """Only the batch whose rows were written counts them, on a real Postgres."""
    settings = Settings(data_dir=tmp_path, router_token=TOKEN, router_database_url=postgres_url)
    model = f"pgm-{tmp_path.name}"[:100]
    pg_app = create_app(settings)
    with served(pg_app) as url:
        async with RouterClient(url, TOKEN) as client:
            await deploy_credit(client, model, artifacts, "v1")
            ids = await incident_traffic(client, model, n=10)
            outcomes = {i: i % 2 == 1 for i in ids[::2]}
            results = await asyncio.gather(
                *(client.record_outcomes(model, outcomes) for _ in range(3))
            )
            assert sum(r.recorded for r in results) == len(outcomes)
            log = await client.decisions(model, include_shadow=True, limit=100_000)

    names = (OUTCOMES, OUTCOME_AMOUNT, OUTCOME_AMOUNT_SQUARES)
    assert_same(await counters(pg_app, names, OUTCOME_LABELS), expected_outcomes(log, outcomes))
    live = await counters(
        pg_app, (DECISIONS, DECISION_AMOUNT, DECISION_AMOUNT_SQUARES), DECISION_LABELS
    )
    assert_same(live, expected_decisions(log, shadow=False))


async def test_each_router_app_counts_only_its_own_decisions(
    deployed: RouterClient, artifacts: dict[str, str], tmp_path: Path
) -> None:
    other = create_app(Settings(data_dir=tmp_path / "other", router_token=SecretStr(TOKEN)))
    async with client_for(other) as client:
        await deploy_credit(client, MODEL, artifacts, "v1")
        await client.decide(MODEL, applicant("only-here"))
    await deployed.decide(MODEL, applicant("elsewhere-1"))
    await deployed.decide(MODEL, applicant("elsewhere-2"))

    counted = await counters(
        other, (DECISIONS, DECISION_AMOUNT, DECISION_AMOUNT_SQUARES), DECISION_LABELS
    )
    assert sum(count for count, _, _ in counted.values()) == 1

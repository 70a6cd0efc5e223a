"""The router's outcomes, window summaries and deployment reads, over HTTP.

Summaries are checked against a recomputation in Python from the full decision log
(``decisions(include_shadow=True)``), so the SQL aggregation has to agree with the
rows it aggregates, shadows and all.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session

from config.settings import Settings
from contracts.routing import Serving
from router.app import create_app
from router.client import OutcomeConflictError, RouterClient, RouterError
from router.decision_log import DecisionRow
from router.schemas import (
    MAX_OUTCOMES_PER_REQUEST,
    Applicant,
    DecisionRecord,
    DecisionSummaryRow,
)
from tests import test_router as shared
from tests.fixtures.gateway import RULES_VERSION, deploy_credit
from tests.test_router import MODEL, TOKEN, applicant, served, update

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

Key = tuple[Serving, str, str, str, str, bool, bool | None]
Sums = tuple[int, float, float]


def people(prefix: str, n: int) -> list[Applicant]:
    """Applicants across income and credit bands, groups, approvals and declines."""
    return [
        applicant(
            f"{prefix}-{i}",
            income=15_000.0 + 4_700.0 * (i % 37),
            credit_history_years=float(i % 14),
            debt_ratio=(0.1, 0.3, 0.5)[i % 3],
            group="ABC"[(i // 2) % 3],
        )
        for i in range(n)
    ]


def recompute(
    records: Iterable[DecisionRecord],
    outcomes: Mapping[int, bool],
    since: datetime,
    until: datetime,
) -> dict[Key, Sums]:
    """The summary, by hand: live rows of the window, grouped, outcomes joined."""
    cells: dict[Key, Sums] = {}
    for r in records:
        if r.shadow or not since <= r.at < until:
            continue
        key = (
            r.served_by,
            r.version,
            r.group,
            r.income_band,
            r.credit_band,
            r.decision,
            outcomes.get(r.id),
        )
        count, total, squares = cells.get(key, (0, 0.0, 0.0))
        cells[key] = (count + 1, total + r.amount, squares + r.amount**2)
    return cells


def by_key(rows: Iterable[DecisionSummaryRow]) -> dict[Key, Sums]:
    cells: dict[Key, Sums] = {}
    for row in rows:
        key = (
            row.served_by,
            row.version,
            row.group,
            row.income_band,
            row.credit_band,
            row.decision,
            row.outcome,
        )
        assert key not in cells, f"cell {key} reported twice"
        cells[key] = (row.count, row.amount_sum, row.amount_sumsq)
    return cells


def assert_same_cells(actual: dict[Key, Sums], expected: dict[Key, Sums]) -> None:
    assert actual.keys() == expected.keys()
    for key, (count, total, squares) in expected.items():
        assert actual[key][0] == count, key
        assert actual[key][1] == pytest.approx(total, rel=1e-9), key
        assert actual[key][2] == pytest.approx(squares, rel=1e-9), key


async def incident_traffic(router: RouterClient, model: str, n: int = 30) -> list[int]:
    """Primary, a canary over primary, then containment with a canary over the fallback."""
    ids = [(await router.decide(model, who)).decision_id for who in people("p", n)]
    await router.set_route(model, update(1, candidate_version="v2", canary_percent=40))
    ids += [(await router.decide(model, who)).decision_id for who in people("c", n)]
    await router.set_route(
        model,
        update(
            2,
            serving=Serving.FALLBACK,
            shadow_versions=["v1"],
            candidate_version="v2",
            canary_percent=30,
        ),
    )
    ids += [(await router.decide(model, who)).decision_id for who in people("f", 2 * n)]
    return ids


@pytest.fixture
async def raw(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://r",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


def bulk_log(app: FastAPI, model: str, n: int, at: datetime) -> list[int]:
    """``n`` live fallback decisions written straight to the log (HTTP would take minutes)."""
    with Session(app.state.router.engine) as session:
        rows = [
            DecisionRow(
                at=at,
                model=model,
                version=RULES_VERSION,
                served_by=Serving.FALLBACK.value,
                shadow=False,
                applicant_id=f"bulk-{i}",
                group="AB"[i % 2],
                income_band="50-60k",
                credit_band="5-10y",
                approved=i % 3 != 0,
                credit_limit=0.0 if i % 3 == 0 else 5_000.0,
            )
            for i in range(n)
        ]
        session.add_all(rows)
        session.commit()
        return [row.id for row in rows if row.id is not None]


# --- outcomes ------------------------------------------------------------------------------


async def test_outcomes_are_recorded_once_and_resending_is_a_no_op(
    deployed: RouterClient,
) -> None:
    ids = [(await deployed.decide(MODEL, who)).decision_id for who in people("o", 4)]

    first = await deployed.record_outcomes(MODEL, {ids[0]: True, ids[1]: False})
    again = await deployed.record_outcomes(MODEL, {ids[0]: True, ids[1]: False})
    mixed = await deployed.record_outcomes(MODEL, {ids[1]: False, ids[2]: True})

    assert (first.recorded, first.unchanged) == (2, 0)
    assert (again.recorded, again.unchanged) == (0, 2)
    assert (mixed.recorded, mixed.unchanged) == (1, 1)
    assert (await deployed.record_outcomes(MODEL, {})).recorded == 0


async def test_a_contradicting_outcome_is_409_and_nothing_of_the_batch_is_recorded(
    deployed: RouterClient,
) -> None:
    ids = [(await deployed.decide(MODEL, who)).decision_id for who in people("x", 3)]
    await deployed.record_outcomes(MODEL, {ids[0]: True, ids[1]: True})

    with pytest.raises(OutcomeConflictError) as refused:
        await deployed.record_outcomes(MODEL, {ids[0]: False, ids[1]: True, ids[2]: True})

    assert refused.value.status_code == 409
    assert refused.value.decision_ids == [ids[0]]
    assert str([ids[0]]) in refused.value.reason
    # ids[2] was in the refused batch, so it is still new; ids[0] kept its first outcome.
    after = await deployed.record_outcomes(MODEL, {ids[0]: True, ids[2]: True})
    assert (after.recorded, after.unchanged) == (1, 1)


async def test_outcomes_must_name_live_decisions_of_the_model(
    deployed: RouterClient,
    artifacts: dict[str, str],
) -> None:
    await deployed.set_route(MODEL, update(1, serving=Serving.FALLBACK, shadow_versions=["v1"]))
    live = (await deployed.decide(MODEL, applicant("u-1"))).decision_id
    shadow = next(r.id for r in await deployed.decisions(MODEL, include_shadow=True) if r.shadow)
    await deploy_credit(deployed, "other-model", artifacts, "v1")
    elsewhere = (await deployed.decide("other-model", applicant("u-2"))).decision_id
    unknown = elsewhere + 1_000

    with pytest.raises(RouterError) as refused:
        await deployed.record_outcomes(
            MODEL, {live: True, shadow: True, elsewhere: False, unknown: True}
        )

    assert refused.value.status_code == 422
    reason = refused.value.reason
    assert f"no decisions [{unknown}]" in reason
    assert f"decisions [{shadow}] are shadow scores" in reason
    assert f"decisions [{elsewhere}] belong to another model" in reason
    assert str(live) not in re.findall(r"\d+", reason)
    # All or nothing: the one good id of the refused batch is still unrecorded.
    assert (await deployed.record_outcomes(MODEL, {live: True})).recorded == 1


async def test_outcome_batches_are_validated(
    deployed: RouterClient,
    raw: httpx.AsyncClient,
) -> None:
    decision = (await deployed.decide(MODEL, applicant("v-1"))).decision_id
    path = f"/v1/models/{MODEL}/outcomes"

    def batch(*pairs: tuple[int, Any]) -> dict[str, Any]:
        return {"outcomes": [{"decision_id": i, "good": good} for i, good in pairs]}

    empty = await raw.post(path, json={"outcomes": []})
    too_many = await raw.post(
        path, json=batch(*((decision, True) for _ in range(MAX_OUTCOMES_PER_REQUEST + 1)))
    )
    torn = await raw.post(path, json=batch((decision, True), (decision, False)))
    not_bool = await raw.post(path, json=batch((decision, "perhaps")))
    for response in (empty, too_many, torn, not_bool):
        assert response.status_code == 422, response.text
    assert f"decisions [{decision}] are given both a good and a bad outcome" in torn.text

    repeated = await raw.post(path, json=batch((decision, True), (decision, True)))
    assert repeated.json() == {"recorded": 1, "unchanged": 0}


async def test_outcome_batches_larger_than_one_query(
    app: FastAPI,
    deployed: RouterClient,
) -> None:
    ids = bulk_log(app, MODEL, 1_200, datetime.now(UTC))
    outcomes = {i: i % 2 == 0 for i in ids}

    assert (await deployed.record_outcomes(MODEL, outcomes)).recorded == 1_200
    assert (await deployed.record_outcomes(MODEL, outcomes)).unchanged == 1_200
    flipped = {i: not good for i, good in list(outcomes.items())[-700:]}
    with pytest.raises(OutcomeConflictError) as refused:
        await deployed.record_outcomes(MODEL, flipped)
    assert refused.value.decision_ids == sorted(flipped)
    assert "(700 in all)" in refused.value.reason

    unknown = {max(ids) + n: True for n in range(1, 1_001)}
    with pytest.raises(RouterError, match=r"\(1000 in all\)") as missing:
        await deployed.record_outcomes(MODEL, unknown)
    assert missing.value.status_code == 422


async def test_concurrent_identical_batches_record_each_outcome_once(
    deployed: RouterClient,
) -> None:
    await deployed.set_route(MODEL, update(1, serving=Serving.FALLBACK))
    ids = [(await deployed.decide(MODEL, who)).decision_id for who in people("k", 40)]
    outcomes = {i: i % 3 == 0 for i in ids}

    results = await asyncio.gather(*(deployed.record_outcomes(MODEL, outcomes) for _ in range(4)))

    assert all(r.recorded + r.unchanged == len(ids) for r in results)
    assert sum(r.recorded for r in results) == len(ids)


# --- summaries ------------------------------------------------------------------------------


async def test_the_summary_equals_a_recomputation_from_the_log(
    deployed: RouterClient,
) -> None:
    start = datetime.now(UTC)
    ids = await incident_traffic(deployed, MODEL)
    outcomes = {i: i % 2 == 0 for i in ids[::3]}
    await deployed.record_outcomes(MODEL, outcomes)
    end = datetime.now(UTC) + timedelta(seconds=1)

    summary = await deployed.decision_summary(MODEL, start, end)

    log = await deployed.decisions(MODEL, include_shadow=True, limit=100_000)
    assert any(r.shadow for r in log), "the traffic must include shadow scores to leave out"
    assert_same_cells(by_key(summary), recompute(log, outcomes, start, end))
    assert sum(row.count for row in summary) == len(ids)
    sides = {(row.served_by, row.version) for row in summary}
    assert sides == {
        (Serving.PRIMARY, "v1"),
        (Serving.CANDIDATE, "v2"),
        (Serving.FALLBACK, RULES_VERSION),
    }
    joined = sum(row.count for row in summary if row.outcome is not None)
    assert joined == len(outcomes)
    assert {row.outcome for row in summary} == {True, False, None}


async def test_the_summary_window_is_half_open(deployed: RouterClient) -> None:
    await incident_traffic(deployed, MODEL, n=6)
    log = await deployed.decisions(MODEL, include_shadow=True, limit=100_000)
    live = [r for r in log if not r.shadow]
    middle = live[len(live) // 2].at
    before, after = live[0].at - timedelta(seconds=1), live[-1].at + timedelta(seconds=1)

    early = await deployed.decision_summary(MODEL, before, middle)
    late = await deployed.decision_summary(MODEL, middle, after)

    assert_same_cells(by_key(early), recompute(log, {}, before, middle))
    assert_same_cells(by_key(late), recompute(log, {}, middle, after))
    assert sum(r.count for r in early) + sum(r.count for r in late) == len(live)
    assert sum(r.count for r in late) == sum(r.at >= middle for r in live)
    assert await deployed.decision_summary(MODEL, middle, middle) == []


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"since": "2026-01-01T00:00:00", "until": "2026-01-02T00:00:00Z"}, "timezone"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00"}, "timezone"),
        ({"since": "2026-01-01T00:00:00Z"}, "until"),
        ({"until": "2026-01-01T00:00:00Z"}, "since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "is before since"),
    ],
)
async def test_a_summary_needs_an_aware_ordered_window(
    deployed: RouterClient,
    raw: httpx.AsyncClient,
    params: dict[str, str],
    reason: str,
) -> None:
    response = await raw.get(f"/v1/models/{MODEL}/decisions/summary", params=params)
    assert response.status_code == 422
    assert reason in response.text


async def test_a_summary_of_a_model_with_no_decisions_is_empty(
    deployed: RouterClient,
) -> None:
    now = datetime.now(UTC)
    assert await deployed.decision_summary(MODEL, now - timedelta(days=7), now) == []


# --- deployment ------------------------------------------------------------------------------


async def test_a_candidate_version_is_added_to_the_deployment_as_read(
    router: RouterClient,
    artifacts: dict[str, str],
) -> None:
    deployed_v1 = await deploy_credit(router, MODEL, {"v1": artifacts["v1"]}, "v1")
    assert await router.get_deployment(MODEL) == deployed_v1

    current = await router.get_deployment(MODEL)
    widened = await deploy_credit(
        router, MODEL, {**current.versions, "v2": artifacts["v2"]}, current.primary_version
    )
    route = await router.set_route(MODEL, update(1, candidate_version="v2", canary_percent=1))

    read = await router.get_deployment(MODEL)
    assert read.versions == artifacts
    assert (read.primary_version, read.updated_at) == ("v1", widened.updated_at)
    assert read.route == route


# --- the same on Postgres ---------------------------------------------------------------------


async def test_outcomes_and_summaries_hold_on_postgres(
    postgres_url: str,
    tmp_path: Path,
    artifacts: dict[str, str],
) -> None:
    settings = Settings(data_dir=tmp_path, router_token=TOKEN, router_database_url=postgres_url)
    model = f"pgo-{tmp_path.name}"[:100]
    with served(create_app(settings)) as url:
        async with RouterClient(url, TOKEN) as router:
            await deploy_credit(router, model, artifacts, "v1")
            start = datetime.now(UTC)
            ids = await incident_traffic(router, model, n=10)
            outcomes = {i: i % 2 == 1 for i in ids[::2]}
            results = await asyncio.gather(
                *(router.record_outcomes(model, outcomes) for _ in range(3))
            )
            assert sum(r.recorded for r in results) == len(outcomes)
            with pytest.raises(OutcomeConflictError):
                await router.record_outcomes(model, {ids[0]: not outcomes[ids[0]]})
            shadow = next(
                r.id for r in await router.decisions(model, include_shadow=True) if r.shadow
            )
            with pytest.raises(RouterError, match="shadow scores"):
                await router.record_outcomes(model, {shadow: True})
            end = datetime.now(UTC) + timedelta(seconds=1)

            summary = await router.decision_summary(model, start, end)
            log = await router.decisions(model, include_shadow=True, limit=100_000)
            assert_same_cells(by_key(summary), recompute(log, outcomes, start, end))
            assert (await router.get_deployment(model)).route.generation == 2

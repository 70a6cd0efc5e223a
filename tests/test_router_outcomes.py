"""The gateway's outcomes, window and metrics over HTTP, on the shared decision store.

Windows are checked against a recomputation in Python from the gateway's own decision
listing, so the rollups have to agree with the rows they summarise (shadows left out,
the candidate relabelled, outcomes moved). Metrics are the documented convention of
``decisions.prometheus``, labelled by the manifest's group and stratum keys.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from config.settings import Settings
from contracts.metrics import DecisionWindow, Side
from contracts.routing import Serving
from decisions.prometheus import DECISIONS, OUTCOMES, SHADOW_DECISIONS
from router.app import create_app
from router.client import OutcomeConflictError, RouterClient, RouterError
from router.schemas import LoggedDecision
from tests import test_router as shared
from tests.fixtures.gateway import deploy_credit
from tests.test_router import MODEL, TOKEN, applicant, served, update

# The gateway fixtures of test_router.py (pytest finds fixtures by name in a module).
app, artifacts, deployed, router, settings, store, _artifacts_dir = (
    shared.app,
    shared.artifacts,
    shared.deployed,
    shared.router,
    shared.settings,
    shared.store,
    shared._artifacts_dir,  # autouse: this module's gateways open the shared artifacts directory
)

Cell = tuple[Side, str, str, bool, bool | None]


async def incident_traffic(client: RouterClient, model: str, n: int = 30) -> list[str]:
    """Decisions from every side: primary, then fallback with the model in shadow and a
    canary candidate; the live decision ids."""
    people = [
        applicant(
            f"t-{i}",
            income=15_000.0 + 4_700.0 * (i % 37),
            credit_history_years=float(i % 14),
            debt_ratio=(0.1, 0.3, 0.5)[i % 3],
            group="AB"[(i // 2) % 2],
        )
        for i in range(n)
    ]
    ids = [(await client.decide(model, who)).decision_id for who in people[: n // 3]]
    await client.set_route(
        model,
        update(1, serving=Serving.FALLBACK, shadow_versions=["v1"]),
    )
    ids += [d.decision_id for d in await client.decide_batch(model, people[n // 3 : 2 * n // 3])]
    await client.set_route(
        model,
        update(
            2,
            serving=Serving.FALLBACK,
            shadow_versions=["v1"],
            candidate_version="v2",
            canary_percent=50,
        ),
    )
    ids += [(await client.decide(model, who)).decision_id for who in people[2 * n // 3 :]]
    return ids


def recompute(
    logged: Iterable[LoggedDecision], outcomes: Mapping[str, bool], candidate: str
) -> dict[Cell, tuple[int, float]]:
    cells: dict[Cell, tuple[int, float]] = {}
    for r in logged:
        if r.shadow:
            continue
        if r.served_by is Serving.CANDIDATE and r.version != candidate:
            continue
        side = Side.CANDIDATE if r.served_by is Serving.CANDIDATE else Side.STABLE
        key = (side, r.group, r.stratum, bool(r.decision), outcomes.get(r.decision_id))
        count, total = cells.get(key, (0, 0.0))
        cells[key] = (count + 1, total + (r.amount or 0.0))
    return cells


def cells_of(window: DecisionWindow) -> dict[Cell, tuple[int, float]]:
    return {
        (c.side, c.group, c.stratum, c.approved, c.outcome): (c.count, pytest.approx(c.amount_sum))
        for c in window.cells
    }


async def check_outcomes_and_window(client: RouterClient, model: str) -> None:
    start = datetime.now(UTC)
    ids = await incident_traffic(client, model)
    outcomes = {i: n % 2 == 1 for n, i in enumerate(ids[::2])}

    results = await asyncio.gather(*(client.record_outcomes(model, outcomes) for _ in range(3)))
    assert sum(r.recorded for r in results) == len(outcomes)  # each recorded once
    again = await client.record_outcomes(model, outcomes)
    assert (again.recorded, again.unchanged) == (0, len(outcomes))

    first = ids[0]
    with pytest.raises(OutcomeConflictError, match="already has outcome"):
        await client.record_outcomes(model, {ids[1]: True, first: not outcomes[first]})
    logged = await client.decisions(model, include_shadow=True, limit=10_000)
    assert not any(r.outcome is not None for r in logged if r.decision_id == ids[1])

    shadow = next(r.decision_id for r in logged if r.shadow)
    with pytest.raises(RouterError, match="is a shadow score") as refused:
        await client.record_outcomes(model, {shadow: True})
    assert refused.value.status_code == 422
    with pytest.raises(RouterError, match="has no decision 'nope'") as unknown:
        await client.record_outcomes(model, {"nope": True})
    assert unknown.value.status_code == 422

    window = await client.window(model, "v2", start, datetime.now(UTC) + timedelta(minutes=1))
    assert window.provider == "decision_log"
    assert cells_of(window) == recompute(logged, outcomes, "v2")
    assert {
        r.rules_version for r in logged if r.served_by is Serving.FALLBACK and not r.shadow
    } == {"credit-rules-v1"}


async def test_outcomes_and_the_window_agree_with_the_log(deployed: RouterClient) -> None:
    await check_outcomes_and_window(deployed, MODEL)


async def test_a_window_needs_an_ordered_window(deployed: RouterClient) -> None:
    now = datetime.now(UTC)
    with pytest.raises(RouterError, match="is before since") as refused:
        await deployed.window(MODEL, "v2", now, now - timedelta(hours=1))
    assert refused.value.status_code == 422


async def test_a_candidate_version_is_added_to_the_deployment_as_read(
    router: RouterClient, artifacts: dict[str, str]
) -> None:
    deployed_v1 = await deploy_credit(router, MODEL, {"v1": artifacts["v1"]}, "v1")
    assert await router.get_deployment(MODEL) == deployed_v1
    current = await router.get_deployment(MODEL)
    widened = await router.deploy(
        MODEL,
        {**current.versions, "v2": artifacts["v2"]},
        current.primary_version,
        manifest=current.manifest,
        fallback=current.fallback,
    )
    route = await router.set_route(MODEL, update(1, candidate_version="v2", canary_percent=1))
    read = await router.get_deployment(MODEL)
    assert read.versions == artifacts
    assert (read.primary_version, read.updated_at, read.rules_version) == (
        "v1",
        widened.updated_at,
        "credit-rules-v1",
    )
    assert read.route == route


# --- metrics -------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer wrong"])
async def test_metrics_need_the_gateways_token(app: FastAPI, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://r"
    ) as raw:
        assert (await raw.get("/metrics", headers=headers)).status_code == 401


async def test_decisions_shadows_and_outcomes_are_counted_by_cell(
    app: FastAPI, deployed: RouterClient
) -> None:
    ids = await incident_traffic(deployed, MODEL, n=12)
    await deployed.record_outcomes(MODEL, {ids[0]: True})
    await deployed.record_outcomes(MODEL, {ids[0]: True})  # resent: not counted again
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://r",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as raw:
        text = (await raw.get("/metrics")).text
    samples = {
        family.name: [s for s in family.samples if s.name.endswith("_total")]
        for family in text_string_to_metric_families(text)
    }
    live = samples[DECISIONS.removesuffix("_total")]
    assert sum(s.value for s in live) == 12
    assert {s.labels["served_by"] for s in live} >= {"primary", "fallback"}
    assert all("|" in s.labels["stratum"] for s in live)  # income band | credit band
    assert {s.labels["group"] for s in live} == {"A", "B"}
    shadows = samples[SHADOW_DECISIONS.removesuffix("_total")]
    assert sum(s.value for s in shadows) == sum(
        r.shadow for r in await deployed.decisions(MODEL, include_shadow=True)
    )
    outcomes = samples[OUTCOMES.removesuffix("_total")]
    assert sum(s.value for s in outcomes) == 1


# --- the same on Postgres ---------------------------------------------------------------------


async def test_outcomes_and_windows_hold_on_postgres(
    postgres_url: str, tmp_path: Path, artifacts: dict[str, str]
) -> None:
    settings = Settings(data_dir=tmp_path, router_token=TOKEN, router_database_url=postgres_url)
    model = f"pgo-{uuid.uuid4().hex[:12]}"
    with served(create_app(settings)) as url:
        async with RouterClient(url, TOKEN) as client:
            await deploy_credit(client, model, artifacts, "v1")
            await check_outcomes_and_window(client, model)

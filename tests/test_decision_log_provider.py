"""The decision-log metrics provider: router summary rows relabelled as canary cells."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from config.targets import GATEWAY, TargetResolver
from contracts.metrics import DecisionCell, DecisionWindow, Side
from contracts.routing import Serving
from contracts.targets import RouterRef
from metrics import decision_log
from metrics.decision_log import DecisionLogProvider
from metrics.provider import MetricsProvider, ProviderError
from router.client import RouterClient
from tests import test_router as shared
from tests.fixtures.gateway import RULES_VERSION
from tests.test_router import MODEL, TOKEN, applicant, update

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

ROUTER = "http://router"  # the declared `gateway` target
GATEWAY_REF = RouterRef(target=GATEWAY)
SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 3, 8, tzinfo=UTC)
CellKey = tuple[Side, str, str, bool, bool | None]


def row(served_by: str, version: str, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "served_by": served_by,
        "version": version,
        "group": "A",
        "income_band": "50-60k",
        "credit_band": "5-10y",
        "approved": True,
        "outcome": None,
        "count": 10,
        "amount_sum": 50_000.0,
        "amount_sumsq": 250_000_000.0,
    }
    return base | changes


def answering(rows: list[dict[str, Any]], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=rows)

    return httpx.MockTransport(handler)


@pytest.fixture
def debug_logs(monkeypatch: pytest.MonkeyPatch) -> list[MutableMapping[str, Any]]:
    """The provider's log lines at every level, whatever the process configured."""
    capture = structlog.testing.LogCapture()
    logger = structlog.wrap_logger(
        None,
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    monkeypatch.setattr(decision_log, "log", logger)
    return capture.entries


def cells_by_key(cells: list[DecisionCell]) -> dict[CellKey, tuple[int, float, float]]:
    keyed: dict[CellKey, tuple[int, float, float]] = {}
    for cell in cells:
        key = (cell.side, cell.group, cell.stratum, cell.decision, cell.outcome)
        assert key not in keyed, f"cell {key} given twice"
        keyed[key] = (cell.count, cell.amount_sum, cell.amount_sumsq)
    return keyed


def test_it_is_a_metrics_provider() -> None:
    provider: MetricsProvider = DecisionLogProvider(TargetResolver.single(ROUTER, TOKEN))
    assert provider.name == "decision_log"
    assert TOKEN not in repr(provider)


async def test_rows_become_cells_of_the_two_arms(
    debug_logs: list[MutableMapping[str, Any]],
) -> None:
    rows = [
        row("primary", "v1"),
        row("fallback", RULES_VERSION, count=5, amount_sum=20_000.0,
            amount_sumsq=80_000_000.0),
        row("fallback", RULES_VERSION, group="B", credit_band="<2y", approved=False,
            outcome=False, count=3, amount_sum=0.0, amount_sumsq=0.0),
        row("candidate", "v2", outcome=True, count=4, amount_sum=22_000.0,
            amount_sumsq=121_000_000.0),
        row("candidate", "v3", count=7),
        row("candidate", "v3", group="B", count=2),
    ]  # fmt: skip
    seen: list[httpx.Request] = []
    provider = DecisionLogProvider(
        TargetResolver.single(ROUTER, TOKEN), transport=answering(rows, seen)
    )

    window = await provider.window(GATEWAY_REF, MODEL, "v2", SINCE, UNTIL)

    assert (window.model, window.candidate_version, window.provider) == (
        MODEL,
        "v2",
        "decision_log",
    )
    assert (window.since, window.until) == (SINCE, UNTIL)
    assert cells_by_key(window.cells) == {
        # primary and fallback are one stable arm: their cells add up
        (Side.STABLE, "A", "50-60k|5-10y", True, None): (15, 70_000.0, 330_000_000.0),
        (Side.STABLE, "B", "50-60k|<2y", False, False): (3, 0.0, 0.0),
        (Side.CANDIDATE, "A", "50-60k|5-10y", True, True): (4, 22_000.0, 121_000_000.0),
    }
    assert window.decisions == 22  # the 9 decisions of candidate v3 are left out

    [request] = seen
    assert request.url.path == f"/v1/models/{MODEL}/decisions/summary"
    assert request.url.params["since"] == SINCE.isoformat()
    assert request.url.params["until"] == UNTIL.isoformat()
    assert request.headers["authorization"] == f"Bearer {TOKEN}"

    [line] = [e for e in debug_logs if "left out" in e["event"]]
    assert line["log_level"] == "debug"
    assert (line["rows"], line["decisions"], line["other_versions"]) == (2, 9, ["v3"])


async def test_nothing_is_logged_when_nothing_is_left_out(
    debug_logs: list[MutableMapping[str, Any]],
) -> None:
    provider = DecisionLogProvider(
        TargetResolver.single(ROUTER, TOKEN), transport=answering([], [])
    )
    window = await provider.window(GATEWAY_REF, MODEL, "v2", SINCE, UNTIL)
    assert window.cells == []
    assert not debug_logs


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(404, json={"detail": "model 'nope' is not deployed"}), r"\(404\)"),
        (httpx.Response(401, json={"detail": "missing or wrong bearer token"}), "bearer token"),
        (httpx.Response(503, text="overloaded"), "overloaded"),
    ],
)
async def test_a_refusal_is_a_provider_error_with_the_routers_reason(
    response: httpx.Response, expected: str
) -> None:
    provider = DecisionLogProvider(
        TargetResolver.single(ROUTER, TOKEN), transport=httpx.MockTransport(lambda _r: response)
    )
    with pytest.raises(ProviderError, match=expected) as failed:
        await provider.window(GATEWAY_REF, "nope", "v2", SINCE, UNTIL)
    assert "http://router" in str(failed.value)


async def test_an_unreachable_router_is_a_provider_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    provider = DecisionLogProvider(
        TargetResolver.single(ROUTER, TOKEN), transport=httpx.MockTransport(refuse)
    )
    with pytest.raises(ProviderError, match="unreachable"):
        await provider.window(GATEWAY_REF, MODEL, "v2", SINCE, UNTIL)


async def test_a_window_from_a_real_router(app: FastAPI, deployed: RouterClient) -> None:
    """An earlier candidate (v1) is left out; primary and fallback are the stable arm."""
    start = datetime.now(UTC)
    await deployed.set_route(MODEL, update(1, candidate_version="v1", canary_percent=50))
    for i in range(30):
        await deployed.decide(MODEL, applicant(f"old-{i}", income=25_000.0 + 3_000 * i))
    await deployed.set_route(
        MODEL,
        update(
            2,
            serving=Serving.FALLBACK,
            shadow_versions=["v1"],
            candidate_version="v2",
            canary_percent=40,
        ),
    )
    for i in range(60):
        who = applicant(f"new-{i}", income=25_000.0 + 1_500 * i, group="AB"[i % 2])
        await deployed.decide(MODEL, who)
    log = await deployed.decisions(MODEL, include_shadow=True, limit=100_000)
    live = [r for r in log if not r.shadow]
    outcomes = {r.id: r.decision and r.id % 2 == 0 for r in live[::2]}
    await deployed.record_outcomes(MODEL, outcomes)
    end = datetime.now(UTC) + timedelta(seconds=1)

    provider = DecisionLogProvider(
        TargetResolver.single(ROUTER, TOKEN), transport=httpx.ASGITransport(app=app)
    )
    window = await provider.window(GATEWAY_REF, MODEL, "v2", start, end)

    expected: dict[CellKey, tuple[int, float, float]] = {}
    for r in live:
        if r.served_by is Serving.CANDIDATE and r.version != "v2":
            continue
        side = Side.CANDIDATE if r.served_by is Serving.CANDIDATE else Side.STABLE
        key = (side, r.group, f"{r.income_band}|{r.credit_band}", r.decision, outcomes.get(r.id))
        count, total, squares = expected.get(key, (0, 0.0, 0.0))
        expected[key] = (count + 1, total + r.amount, squares + r.amount**2)
    actual = cells_by_key(window.cells)
    assert actual.keys() == expected.keys()
    for key, (count, total, squares) in expected.items():
        assert actual[key][0] == count
        assert actual[key][1:] == pytest.approx((total, squares), rel=1e-9)
    left_out = sum(r.served_by is Serving.CANDIDATE and r.version == "v1" for r in live)
    assert left_out > 0
    assert window.decisions == len(live) - left_out
    assert {cell.side for cell in window.cells} == {Side.STABLE, Side.CANDIDATE}
    assert DecisionWindow.model_validate_json(window.model_dump_json()) == window

    wrong = DecisionLogProvider(
        TargetResolver.single(ROUTER, "wrong"), transport=httpx.ASGITransport(app=app)
    )
    with pytest.raises(ProviderError, match="401"):
        await wrong.window(GATEWAY_REF, MODEL, "v2", start, end)

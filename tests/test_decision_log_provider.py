"""The decision-log metrics provider: a gateway's rollup window fetched over HTTP.

The gateway route is played here by the few lines any Fairlane gateway runs: parse a
:class:`WindowQuery`, answer :func:`decisions.store.window` over a real SQLite log.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException
from sqlalchemy import Engine
from sqlmodel import Session

from config.targets import GATEWAY, TargetResolver, UnknownTarget
from contracts.metrics import DecisionWindow, Side
from contracts.routing import Serving
from contracts.targets import RouterRef
from decisions.records import WINDOW_PATH, DecisionRecord, WindowQuery
from decisions.store import append, window
from decisions.tables import create_decision_tables
from metrics.decision_log import DecisionLogProvider
from metrics.provider import MetricsProvider, ProviderError
from store.db import make_engine

TOKEN = "gateway-token"
GATEWAY_URL = "http://gateway"
GATEWAY_REF = RouterRef(target=GATEWAY)
MODEL = "hiring"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SINCE, UNTIL = T0, T0 + timedelta(hours=1)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    create_decision_tables(engine)
    yield engine
    engine.dispose()


def gateway(engine: Engine) -> FastAPI:
    app = FastAPI()

    @app.get(WINDOW_PATH)
    def summary(
        model: str,
        query: Annotated[WindowQuery, Depends()],
        authorization: Annotated[str, Header()] = "",
    ) -> DecisionWindow:
        if authorization != f"Bearer {TOKEN}":
            raise HTTPException(401, "missing or wrong bearer token")
        with Session(engine) as session:
            return window(session, model, query.candidate_version, query.since, query.until)

    return app


def provider(transport: httpx.AsyncBaseTransport, token: str = TOKEN) -> DecisionLogProvider:
    return DecisionLogProvider(TargetResolver.single(GATEWAY_URL, token), transport=transport)


def decision(n: int, served_by: Serving, version: str, **changes: object) -> DecisionRecord:
    values: dict[str, object] = {
        "decision_id": f"{version}-{n}",
        "model": MODEL,
        "version": version,
        "served_by": served_by,
        "at": T0 + timedelta(seconds=n),
        "group": "A" if n % 2 else "B",
        "stratum": "senior",
        "decision": True,
        "amount": None,
    }
    return DecisionRecord.model_validate(values | changes)


def test_it_is_a_metrics_provider() -> None:
    named: MetricsProvider = provider(httpx.MockTransport(lambda _r: httpx.Response(500)))
    assert named.name == "decision_log"
    assert TOKEN not in repr(named)


async def test_a_window_from_the_gateways_rollups(engine: Engine) -> None:
    with Session(engine) as session:
        append(
            session,
            [
                *(decision(n, Serving.PRIMARY, "v1") for n in range(10)),
                *(decision(n, Serving.FALLBACK, "rules", rules_version="r1") for n in range(4)),
                *(decision(n, Serving.CANDIDATE, "v2") for n in range(6)),
                *(decision(n, Serving.CANDIDATE, "v3") for n in range(7)),  # earlier candidate
                *(
                    decision(n, Serving.CANDIDATE, "v2", shadow=True, decision_id=f"s{n}")
                    for n in range(5)
                ),
            ],
        )
    transport = httpx.ASGITransport(app=gateway(engine))

    look = await provider(transport).window(GATEWAY_REF, MODEL, "v2", SINCE, UNTIL)

    assert (look.model, look.candidate_version, look.provider) == (MODEL, "v2", "decision_log")
    assert (look.since, look.until) == (SINCE, UNTIL)
    by_side = {side: sum(c.count for c in look.cells if c.side is side) for side in Side}
    assert by_side == {Side.STABLE: 14, Side.CANDIDATE: 6}  # v3 and shadow scores left out
    assert look.covered_since == T0


async def test_a_refusal_is_a_provider_error_with_the_gateways_reason(engine: Engine) -> None:
    transport = httpx.ASGITransport(app=gateway(engine))
    with pytest.raises(ProviderError, match=r"\(401\).*bearer token") as failed:
        await provider(transport, token="not-the-token-xyz").window(
            GATEWAY_REF, MODEL, "v2", SINCE, UNTIL
        )
    assert "http://gateway" in str(failed.value)
    assert "not-the-token-xyz" not in str(failed.value)


async def test_an_unreachable_gateway_is_a_provider_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ProviderError, match="unreachable"):
        await provider(httpx.MockTransport(refuse)).window(GATEWAY_REF, MODEL, "v2", SINCE, UNTIL)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json=[{"served_by": "primary"}]),  # the old summary rows
        httpx.Response(
            200,
            json=DecisionWindow(
                model=MODEL, candidate_version="v9", since=SINCE, until=UNTIL, provider="x"
            ).model_dump(mode="json"),
        ),
    ],
)
async def test_an_answer_that_is_not_the_window_asked_for_is_refused(
    answer: httpx.Response,
) -> None:
    with pytest.raises(ProviderError, match="window"):
        await provider(httpx.MockTransport(lambda _r: answer)).window(
            GATEWAY_REF, MODEL, "v2", SINCE, UNTIL
        )


async def test_an_undeclared_target_is_refused_before_any_request() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500)

    with pytest.raises(UnknownTarget):
        await provider(httpx.MockTransport(record)).window(
            RouterRef(target="elsewhere"), MODEL, "v2", SINCE, UNTIL
        )
    assert seen == []

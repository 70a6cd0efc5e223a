"""A reported decision from the future is refused; how far ahead counts as the future is
an operator's setting (``FAIRLANE_REPORTED_DECISION_MAX_AHEAD_S``, 300 s by default).

Production keeps minutes of clock drift. Tests on Temporal's time-skipping server widen
it, because the decisions they report carry the server's time, hours ahead of the wall
clock after a bake is skipped; the check itself stays on.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.tokens import Role, issue_token
from config import Settings
from registry.service import ModelRegistry
from stack.loopback import free_port
from store.db import create_tables, make_engine
from tests.fixtures.decisions import MODEL, hiring_manifest, reported
from tests.fixtures.services import serve

DECISIONS_URL = f"/v1/models/{MODEL}/decisions"


def post_at(client: httpx.Client, token: str, n: int, ahead: timedelta) -> httpx.Response:
    at = (datetime.now(UTC) + ahead).isoformat()
    return client.post(
        DECISIONS_URL,
        json={"decisions": [reported(n, at=at)]},
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture(params=[None, 86_400], ids=["default", "a-day"])
def ingest(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[httpx.Client, str]]:
    ahead = {} if request.param is None else {"reported_decision_max_ahead_s": request.param}
    settings = Settings(data_dir=tmp_path, **ahead)
    engine = make_engine(settings.resolved_database_url)
    create_tables(engine)
    ModelRegistry(engine).register(hiring_manifest(), "admin")
    token = issue_token(settings.resolved_tokens_file, "scorer", [Role.DECISION_REPORTER])
    with (
        serve(create_app(settings), free_port()) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client, token


def test_the_future_is_refused_beyond_the_configured_skew(
    ingest: tuple[httpx.Client, str], request: pytest.FixtureRequest
) -> None:
    client, token = ingest
    limit = timedelta(seconds=request.node.callspec.params["ingest"] or 300)

    assert post_at(client, token, 1, limit - timedelta(minutes=1)).status_code == 200
    refused = post_at(client, token, 2, limit + timedelta(minutes=1))
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["loc"] == ["body", "decisions", 0, "at"]
    assert "in the future" in problem["msg"]

"""The alert webhooks answer without a hop through the thread pool.

FastAPI runs a plain ``def`` dependency in anyio's thread pool. The alert routes had
four such hops (settings, registry, replay cache, Temporal connection, read off
``app.state``): each waits for a free thread and for the interpreter lock back, and
in an alert storm that was where deliveries queued (``bench/alert_storm.py``'s
rejected-webhook baseline answered 448 requests/s with them, 990/s without). Their
dependencies are async now; this counts the hops a delivery makes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
import pytest_asyncio

from api.app import create_app
from api.tokens import Role, issue_token
from config import Settings
from store.db import create_tables, make_engine

UNREGISTERED = "no-such-model"


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path)
    create_tables(make_engine(settings.resolved_database_url))
    token = issue_token(settings.resolved_tokens_file, "alertmanager", [Role.ALERT_SOURCE])
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://fairlane.test",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every function handed to anyio's thread pool while the test runs."""
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__qualname__", repr(func)))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    return hops


def alertmanager_body() -> dict[str, Any]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "FairnessDisparity", "fairlane_model": UNREGISTERED},
        "annotations": {},
        "startsAt": "2026-12-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.test/graph",
        "fingerprint": "0123456789abcdef",
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="FairnessDisparity"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "fairlane",
        "groupLabels": {"alertname": "FairnessDisparity"},
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test",
        "alerts": [alert],
    }


async def test_an_alertmanager_delivery_takes_no_thread_pool_hop(
    api: httpx.AsyncClient, thread_hops: list[str]
) -> None:
    response = await api.post(
        "/v1/alerts/alertmanager",
        content=json.dumps(alertmanager_body()),
        headers={"Content-Type": "application/json"},
    )

    # Everything but Temporal ran: the token, the body, the model lookup (unregistered).
    assert response.status_code == 422, response.text
    assert UNREGISTERED in response.text
    assert thread_hops == []


async def test_a_generic_delivery_takes_no_thread_pool_hop(
    api: httpx.AsyncClient, thread_hops: list[str]
) -> None:
    body = {"alerts": [{"name": "FairnessDisparity", "model": UNREGISTERED, "status": "firing"}]}
    response = await api.post("/v1/alerts", json=body)

    assert response.status_code == 422, response.text
    assert thread_hops == []

"""The Alertmanager fixture starts a working Alertmanager that calls its webhook with the
bearer token (the end-to-end alert tests build on it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI, Header, Request

from tests.fixtures.monitoring_programs import running_alertmanager
from tests.fixtures.services import free_port, serve

WEBHOOK_TOKEN = "alertmanager-webhook-token-42"


def webhook() -> tuple[FastAPI, list[tuple[str | None, dict[str, Any]]]]:
    """A receiver that keeps each delivery with the Authorization header it came with."""
    received: list[tuple[str | None, dict[str, Any]]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request, authorization: str | None = Header(None)) -> None:
        received.append((authorization, await request.json()))

    return app, received


async def test_alertmanager_lists_a_posted_alert_and_delivers_it_with_the_token() -> None:
    app, received = webhook()
    alert = {
        "labels": {"alertname": "FairnessDrift", "fairlane_model": "credit-limit"},
        "annotations": {"summary": "group B limits 30% lower"},
        "startsAt": datetime.now(UTC).isoformat(),
        "endsAt": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
    }
    with serve(app, free_port()) as hook_url:
        async with (
            running_alertmanager(f"{hook_url}/hook", WEBHOOK_TOKEN) as alertmanager,
            httpx.AsyncClient(base_url=alertmanager, timeout=10) as client,
        ):
            posted = await client.post("/api/v2/alerts", json=[alert])
            assert posted.status_code == 200, posted.text
            listed = (await client.get("/api/v2/alerts")).json()
            assert [a["labels"]["alertname"] for a in listed] == ["FairnessDrift"]
            for _ in range(300):  # group_wait is 1s; a deadline, not a timing assertion
                if received:
                    break
                await asyncio.sleep(0.1)

    assert received, "alertmanager never called the webhook"
    authorization, payload = received[0]
    assert authorization == f"Bearer {WEBHOOK_TOKEN}"
    assert payload["status"] == "firing"
    assert payload["alerts"][0]["labels"]["fairlane_model"] == "credit-limit"

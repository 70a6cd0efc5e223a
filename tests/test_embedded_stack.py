"""`fairlane up`'s stack for real: separate processes, and an incident survives a restart of all.

Starts the Temporal dev server (SQLite file), the router, the worker and the API as
child processes on their own ports, opens an incident, stops everything, starts it
again, and finishes the incident through the API.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.tokens import Role, issue_token
from demo.credit_model import prepare_demo_model
from demo.scenario import write_manifest
from registry.service import load_manifest_file
from router.client import RouterClient
from stack.loopback import settings_on_free_ports
from stack.supervisor import EmbeddedStack
from stack.temporal import connect
from tests.fixtures.gateway import deploy_credit

pytestmark = pytest.mark.integration


async def _state(api: httpx.AsyncClient, incident: str) -> dict[str, Any]:
    response = await api.get(f"/v1/incidents/{incident}")
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


async def _until(api: httpx.AsyncClient, incident: str, phase: str) -> dict[str, Any]:
    for _ in range(600):
        state = await _state(api, incident)
        if state["phase"] == phase:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{incident} never reached {phase}: {state}")


async def test_an_incident_survives_a_restart_of_everything(tmp_path: Path) -> None:
    settings = settings_on_free_ports(tmp_path)
    people = {
        "ic": [Role.INCIDENT_COMMANDER, Role.ADMIN],
        "legal": [Role.LEGAL],
        "compliance": [Role.COMPLIANCE],
    }
    tokens = {n: issue_token(settings.resolved_tokens_file, n, r) for n, r in people.items()}
    files = prepare_demo_model(tmp_path, training_rows=4_000, validation_rows=1_000)

    stack = EmbeddedStack(settings)
    await stack.start()
    try:
        settings = stack.settings
        assert settings.router_token is not None
        async with (
            RouterClient(settings.router_url, settings.router_token.get_secret_value()) as router,
            httpx.AsyncClient(base_url=settings.api_url, timeout=30) as api,
        ):
            api.headers["Authorization"] = f"Bearer {tokens['ic']}"
            await deploy_credit(
                router, files.model_id, {files.version: files.artifact_name}, files.version
            )
            manifest = load_manifest_file(write_manifest(files))
            registered = await api.post("/v1/models", json=manifest.model_dump(mode="json"))
            assert registered.status_code == 201
            opened = await api.post(
                "/v1/incidents", json={"model": files.model_id, "summary": "restart test"}
            )
            assert opened.status_code == 202
            incident = opened.json()["incident_id"]
            await _until(api, incident, "awaiting_signoff")
    finally:
        stack.stop()

    assert (tmp_path / "temporal.db").is_file()
    # Payloads are sealed (stack/codec.py): the summary is nowhere in Temporal's files.
    for stored in tmp_path.glob("temporal.db*"):  # noqa: ASYNC240
        assert b"restart test" not in stored.read_bytes(), stored.name
    with closing(sqlite3.connect(tmp_path / "temporal.db")) as temporal_db:
        # The dev server writes through a write-ahead log (twice the commits per second).
        assert temporal_db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    restarted = EmbeddedStack(settings)
    await restarted.start()
    try:
        client = await connect(settings)
        described = await client.get_workflow_handle(incident).describe()
        assert described.typed_search_attributes is not None
        async with httpx.AsyncClient(base_url=settings.api_url, timeout=30) as api:
            api.headers["Authorization"] = f"Bearer {tokens['ic']}"
            state = await _state(api, incident)
            assert state["phase"] == "awaiting_signoff" and state["contained"]
            for who in ("legal", "compliance"):
                decided = await api.post(
                    f"/v1/incidents/{incident}/signoffs",
                    headers={"Authorization": f"Bearer {tokens[who]}"},
                    json={"role": who, "decision": "approve"},
                )
                assert decided.status_code == 200, decided.text
            final = await _until(api, incident, "resolved")
            assert final["route_now"]["serving"] == "fallback"
    finally:
        restarted.stop()
    async with httpx.AsyncClient(timeout=2) as probe:
        with pytest.raises(httpx.ConnectError):  # stopping stopped what it started
            await probe.get(f"{settings.api_url}/healthz")


async def test_a_selection_of_services_starts_only_those(tmp_path: Path) -> None:
    """What a benchmark of the router alone starts: the router, exactly as `fairlane up`
    starts it (its log, its token), and no Temporal, worker or API beside it."""
    settings = settings_on_free_ports(tmp_path)
    with pytest.raises(ValueError, match="unknown services"):
        await EmbeddedStack(settings, services=frozenset({"router", "scheduler"})).start()

    async with EmbeddedStack(settings, services=frozenset({"router"})) as stack:
        assert [name for name, _ in stack.processes] == ["router"]
        assert stack.settings.router_token is not None
        async with httpx.AsyncClient(timeout=5) as probe:
            assert (await probe.get(f"{settings.router_url}/healthz")).status_code == 200
            with pytest.raises(httpx.ConnectError):
                await probe.get(f"{settings.api_url}/healthz")
        assert (tmp_path / "logs" / "router.log").is_file()
        assert not (tmp_path / "temporal.db").exists()
        router = stack.process("router")
    assert router.poll() is not None  # leaving the block stopped it

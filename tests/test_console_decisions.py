"""Deciding through the console's forms over HTTP, signed in through the real provider:
an approval of a superseded assessment is refused, and a manual promote with no
conclusive look asks for an explicit confirmation and records that it was given."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.console import PLAYBOOK, Console
from tests.fixtures.oidc import sign_in
from tests.fixtures.services import RouterService

pytestmark = pytest.mark.integration
CLOSED = {"resolved", "rolled_back", "escalated", "failed"}


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


async def _open(console: Console) -> str:
    async with console.api.client() as client:
        opened = await client.post(
            "/v1/incidents",
            headers=console.api.headers("ic"),
            json={"model": "credit-limit", "playbook": PLAYBOOK, "summary": "gap"},
        )
        assert opened.status_code == 202, opened.text
        return str(opened.json()["incident_id"])


async def _state(
    console: Console, incident: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    async with console.api.client() as client:
        for _ in range(600):
            answer = await client.get(
                f"/v1/incidents/{incident}", headers=console.api.headers("auditor")
            )
            if answer.status_code == 200:
                state = answer.json()
                if done(state):
                    return state
                if state["phase"] in CLOSED:
                    break
            await asyncio.sleep(0.1)
    raise AssertionError(f"{incident} never got there: {state}")


def _awaiting(state: dict[str, Any]) -> bool:
    return bool(state["phase"] == "awaiting_signoff" and state.get("signoff"))


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:300]
    return match.group(1)


async def test_an_approval_of_a_superseded_assessment_is_refused(console: Console) -> None:
    incident = await _open(console)
    state = await _state(console, incident, _awaiting)
    current = state["findings"]["assessment"]["digest"]
    superseded = "sha256:" + "0" * 64
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await sign_in(browser, console.url, "lee")
        form = {"csrf_token": _csrf(page), "role": "legal", "decision": "approve"}
        refused = await browser.post(
            f"{console.url}/console/incidents/{incident}/signoff",
            data={**form, "assessment_digest": superseded},
        )
        assert refused.status_code == 409
        assert "has been superseded" in html.unescape(refused.text)
        assert current in refused.text
        bad_role = await browser.post(
            f"{console.url}/console/incidents/{incident}/signoff",
            data={**form, "role": "pope", "assessment_digest": current},
        )
        assert bad_role.status_code == 422 and "role:" in bad_role.text
    decided = [r for r in console.api.trail.records(incident) if r.kind == "signoff.decided"]
    assert decided == []
    after = await _state(console, incident, lambda s: True)
    assert all(not r["votes"] for r in after["signoff"]["roles"])


async def test_a_promote_with_no_conclusive_look_needs_and_records_a_confirmation(
    console: Console,
) -> None:
    incident = await _open(console)
    state = await _state(console, incident, _awaiting)
    digest = state["findings"]["assessment"]["digest"]
    async with console.api.client() as client:
        for who, role in (("legal1", "legal"), ("compliance1", "compliance")):
            ok = await client.post(
                f"/v1/incidents/{incident}/signoffs",
                headers=console.api.headers(who),
                json={"role": role, "decision": "approve", "assessment_digest": digest},
            )
            assert ok.status_code == 200, ok.text
    await _state(console, incident, lambda s: bool(s.get("canary") and s["canary"]["live"]))
    path = f"{console.url}/console/incidents/{incident}/canary"
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await sign_in(browser, console.url, "ivan")
        form = {"csrf_token": _csrf(page), "action": "promote", "reason": "business needs it"}
        asked = await browser.post(path, data=form)
        assert asked.status_code == 409
        assert "I confirm promoting with no conclusive look" in asked.text
        assert not [r for r in console.api.trail.records(incident) if r.kind == "canary.promote"]

        confirmed = await browser.post(path, data={**form, "confirm_inconclusive": "yes"})
        assert confirmed.status_code == 303, confirmed.text
    promoted = [r for r in console.api.trail.records(incident) if r.kind == "canary.promote"]
    assert len(promoted) == 1 and promoted[0].actor == "ivan"
    assert "confirmed: promoted with no conclusive look after 0 looks" in promoted[0].detail

"""Deciding through the console's forms over HTTP, signed in through the real provider:
an approval of a superseded assessment is refused, and a manual promote with no
conclusive look asks for an explicit confirmation and records that it was given."""

from __future__ import annotations

import html

import httpx
import pytest

from tests.fixtures.console import (
    Console,
    approve_by_api,
    awaiting_signoff,
    incident_state,
    open_incident,
)
from tests.fixtures.oidc import csrf_token, sign_in
from tests.fixtures.services import RouterService

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


async def test_an_approval_of_a_superseded_assessment_is_refused(console: Console) -> None:
    incident = await open_incident(console)
    state = await incident_state(console, incident, awaiting_signoff)
    current = state["findings"]["assessment"]["digest"]
    superseded = "sha256:" + "0" * 64
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await sign_in(browser, console.url, "lee")
        form = {"csrf_token": csrf_token(page), "role": "legal", "decision": "approve"}
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
    after = await incident_state(console, incident, lambda s: True)
    assert all(not r["votes"] for r in after["signoff"]["roles"])


async def test_a_promote_with_no_conclusive_look_needs_and_records_a_confirmation(
    console: Console,
) -> None:
    incident = await open_incident(console)
    state = await incident_state(console, incident, awaiting_signoff)
    digest = state["findings"]["assessment"]["digest"]
    await approve_by_api(console, incident, "legal1", "legal", digest)
    await approve_by_api(console, incident, "compliance1", "compliance", digest)
    await incident_state(console, incident, lambda s: bool(s.get("canary") and s["canary"]["live"]))
    path = f"{console.url}/console/incidents/{incident}/canary"
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await sign_in(browser, console.url, "ivan")
        form = {"csrf_token": csrf_token(page), "action": "promote", "reason": "business needs it"}
        asked = await browser.post(path, data=form)
        assert asked.status_code == 409
        assert "I confirm promoting with no conclusive look" in asked.text
        assert not [r for r in console.api.trail.records(incident) if r.kind == "canary.promote"]

        confirmed = await browser.post(path, data={**form, "confirm_inconclusive": "yes"})
        assert confirmed.status_code == 303, confirmed.text
    promoted = [r for r in console.api.trail.records(incident) if r.kind == "canary.promote"]
    assert len(promoted) == 1 and promoted[0].actor == "ivan"
    assert "confirmed: promoted with no conclusive look after 0 looks" in promoted[0].detail

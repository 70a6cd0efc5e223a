"""The console in a real browser (headless Chromium via Selenium), signed in through a
real OpenID provider, against the real dev server, worker and router.

Screenshots of every page land in test-artifacts/console/.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.fixtures.browser import PHONE, browser_sign_in, chromium, screenshot, wait_for
from tests.fixtures.console import (
    Console,
    approve_by_api,
    awaiting_signoff,
    incident_state,
    open_incident,
)
from tests.fixtures.services import RouterService

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


def _trail_kinds(console: Console, incident: str) -> list[tuple[str, str]]:
    return [(r.kind, r.actor) for r in console.api.trail.records(incident)]


def _buttons(driver: WebDriver) -> list[str]:
    return [b.text for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text]


def _posting_forms(driver: WebDriver) -> list[str]:
    """Where the page's forms that change something post to (searches are GET forms)."""
    forms = driver.find_elements(By.CSS_SELECTOR, 'form[method="post"]')
    return [urlsplit(str(f.get_attribute("action"))).path for f in forms]


async def test_an_approver_signs_in_reads_the_assessment_and_approves(console: Console) -> None:
    incident = await open_incident(console)
    state = await incident_state(console, incident, awaiting_signoff)
    digest = state["findings"]["assessment"]["digest"]

    def approve() -> None:
        with chromium() as driver:
            browser_sign_in(driver, console.url, "lee", f"/console/incidents/{incident}/signoff")
            wait_for(driver, "iframe.report")
            assert digest in driver.find_element(By.ID, "main").text
            screenshot(driver, "signoff-before-approval")
            driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe.report"))
            assert "Impact" in driver.find_element(By.TAG_NAME, "body").text
            driver.switch_to.default_content()
            driver.find_element(By.ID, "comment").send_keys(
                "Read in full; the trade-off is acceptable."
            )
            driver.find_element(By.CSS_SELECTOR, 'button[value="approve"]').click()
            wait_for(driver, "p.ok")
            assert "Your decision was recorded" in driver.find_element(By.CSS_SELECTOR, "p.ok").text
            assert "lee: approve" in driver.find_element(By.TAG_NAME, "table").text
            screenshot(driver, "signoff-after-approval")
        with chromium(PHONE) as phone:
            browser_sign_in(phone, console.url, "lee", f"/console/incidents/{incident}/signoff")
            screenshot(phone, "signoff-phone")

    await asyncio.to_thread(approve)
    after = await incident_state(console, incident, lambda s: True)
    legal = next(r for r in after["signoff"]["roles"] if r["role"] == "legal")
    assert legal["outcome"] == "approved" and legal["votes"][0]["principal"] == "lee"
    decided = [r for r in console.api.trail.records(incident) if r.kind == "signoff.decided"]
    assert len(decided) == 1 and digest in decided[0].detail and decided[0].actor == "lee"


async def test_a_second_approver_rejects_and_the_incident_goes_back_to_remediation(
    console: Console,
) -> None:
    incident = await open_incident(console)
    state = await incident_state(console, incident, awaiting_signoff)
    first = state["findings"]["assessment"]["digest"]
    await approve_by_api(console, incident, "legal1", "legal", first)

    def reject() -> None:
        with chromium() as driver:
            browser_sign_in(driver, console.url, "cora", f"/console/incidents/{incident}/signoff")
            wait_for(driver, 'button[value="reject"]')
            driver.find_element(By.ID, "comment").send_keys("The accuracy loss is not explained.")
            driver.find_element(By.CSS_SELECTOR, 'button[value="reject"]').click()
            wait_for(driver, "p.ok")
            screenshot(driver, "signoff-after-rejection")

    await asyncio.to_thread(reject)
    # Back to remediation, as the playbook says on rejection: a second round makes a new
    # candidate, so a new assessment with a new digest awaits a new sign-off.
    again = await incident_state(
        console,
        incident,
        lambda s: awaiting_signoff(s) and s["findings"]["assessment"]["digest"] != first,
    )
    assert [r["votes"] for r in again["signoff"]["roles"]] == [[], []]
    assert again["signoff"]["assessment_digest"] == again["findings"]["assessment"]["digest"]
    steps = [(s["name"], s["status"]) for s in again["steps"]]
    assert ("approve", "failed") in steps
    assert steps.count(("remediate", "succeeded")) == 2
    assert steps.count(("assess", "succeeded")) == 2
    findings = again["findings"]
    assert findings["remediation_rounds"] == 2
    assert findings["candidate"]["version"].endswith("-r2")
    assert findings["candidate"]["version"] != state["findings"]["candidate"]["version"]
    assert ("signoff.decided", "cora") in _trail_kinds(console, incident)
    second = findings["assessment"]["digest"]

    def read_the_new_assessment() -> None:
        with chromium() as driver:
            browser_sign_in(driver, console.url, "cora", f"/console/incidents/{incident}/signoff")
            wait_for(driver, 'button[value="reject"]')
            shown = driver.find_element(By.ID, "main").text
            assert second in shown and first not in shown
            screenshot(driver, "signoff-after-remediation")

    await asyncio.to_thread(read_the_new_assessment)


async def test_an_incident_commander_pauses_and_resumes_the_canary(console: Console) -> None:
    incident = await open_incident(console)
    state = await incident_state(console, incident, awaiting_signoff)
    digest = state["findings"]["assessment"]["digest"]
    await approve_by_api(console, incident, "legal1", "legal", digest)
    await approve_by_api(console, incident, "compliance1", "compliance", digest)
    await incident_state(console, incident, lambda s: bool(s.get("canary") and s["canary"]["live"]))

    def pause_and_resume() -> None:
        with chromium() as driver:
            browser_sign_in(driver, console.url, "ivan", f"/console/incidents/{incident}")
            wait_for(driver, 'button[value="pause"]')
            screenshot(driver, "incident-canary-ramping")
            driver.find_element(By.ID, "reason").send_keys("hold the ramp over the weekend")
            driver.find_element(By.CSS_SELECTOR, 'button[value="pause"]').click()
            wait_for(driver, 'button[value="resume"]')
            confirmation = driver.find_element(By.CSS_SELECTOR, "p.ok").text
            assert 'canary control "pause" was accepted' in confirmation
            assert (
                "paused" in driver.find_element(By.ID, "canary-h").find_element(By.XPATH, "..").text
            )
            screenshot(driver, "incident-canary-paused")
            driver.find_element(By.ID, "reason").send_keys("Monday: carry on")
            driver.find_element(By.CSS_SELECTOR, 'button[value="resume"]').click()
            wait_for(driver, 'button[value="pause"]')
            screenshot(driver, "incident-canary-resumed")

    await asyncio.to_thread(pause_and_resume)
    kinds = _trail_kinds(console, incident)
    assert ("canary.pause", "ivan") in kinds and ("canary.resume", "ivan") in kinds
    state = await incident_state(console, incident, lambda s: True)
    assert state["canary"]["paused"] is False


async def test_an_auditor_sees_the_timeline_and_verification_and_no_control(
    console: Console,
) -> None:
    incident = await open_incident(console)
    await incident_state(console, incident, awaiting_signoff)

    def audit() -> None:
        with chromium() as driver:
            browser_sign_in(driver, console.url, "aude", f"/console/incidents/{incident}")
            wait_for(driver, "#timeline-h")
            timeline = driver.find_element(By.ID, "timeline-h").find_element(By.XPATH, "..").text
            assert "incident.opened" in timeline and "UTC" in timeline
            assert set(_buttons(driver)) == {"Sign out", "Search"}  # a search changes nothing
            assert _posting_forms(driver) == ["/console/sign-out"]
            screenshot(driver, "incident-auditor")
            driver.get(f"{console.url}/console/incidents/{incident}/signoff")
            wait_for(driver, "#assessment-h")
            assert _buttons(driver) == ["Sign out"]
            assert not driver.find_elements(By.CSS_SELECTOR, "textarea, select")
            screenshot(driver, "signoff-auditor")
            driver.get(f"{console.url}/console/audit?incident={incident}")
            wait_for(driver, "#verify-h")
            assert "Verified:" in driver.find_element(By.CSS_SELECTOR, "p.ok").text
            assert "incident.opened" in driver.find_element(By.TAG_NAME, "table").text
            assert set(_buttons(driver)) == {"Sign out", "Show its trail", "Search"}
            assert _posting_forms(driver) == ["/console/sign-out"]  # reading changes nothing
            screenshot(driver, "audit-auditor")
            driver.get(f"{console.url}/console/")
            wait_for(driver, "table")
            assert incident in driver.find_element(By.TAG_NAME, "table").text
            screenshot(driver, "incidents-auditor")
            driver.get(f"{console.url}/console/models")
            wait_for(driver, "h2")
            assert "credit-limit" in driver.find_element(By.ID, "main").text
            screenshot(driver, "models-auditor")

    await asyncio.to_thread(audit)


async def test_a_signed_out_visitor_sees_only_the_sign_in_page(console: Console) -> None:
    incident = await open_incident(console)

    def visit() -> None:
        with chromium() as driver:
            for path in (f"/console/incidents/{incident}", "/console/", "/console/audit"):
                driver.get(f"{console.url}{path}")
                text = driver.find_element(By.TAG_NAME, "body").text
                assert "Sign in to Fairlane" in text
                assert incident not in text and "credit-limit" not in text
                assert [a.text for a in driver.find_elements(By.CSS_SELECTOR, "main a")] == [
                    "Sign in with single sign-on"
                ]
            screenshot(driver, "signed-out")

    await asyncio.to_thread(visit)

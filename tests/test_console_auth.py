"""Signing in to the console through a real OpenID provider, and what a session allows.

The provider is node's oidc-provider, started by the test set-up; every sign-in below
posts its real login and consent forms. Forged, replayed and expired session cookies
and forms without their CSRF token get a clear message and change nothing.
"""

from __future__ import annotations

import html
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, select

from console.sessions import SESSION_COOKIE, ConsoleSessionRow
from store.db import make_engine
from tests.fixtures.console import Console
from tests.fixtures.oidc import csrf_token, sign_in

pytestmark = pytest.mark.integration


def _browser() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=30)


def _text(page: httpx.Response) -> str:
    return html.unescape(page.text)


def _backdate(console: Console, **fields: timedelta) -> None:
    """Move every open session's clocks into the past, as if time had passed."""
    engine = make_engine(console.api.settings.resolved_database_url)
    with Session(engine) as db:
        for row in db.exec(select(ConsoleSessionRow)).all():
            for name, delta in fields.items():
                setattr(row, name, getattr(row, name) - delta)
            db.add(row)
        db.commit()


async def test_sign_in_maps_the_providers_groups_to_fairlane_roles(console: Console) -> None:
    async with _browser() as browser:
        page = await sign_in(browser, console.url, "lee")
        assert page.status_code == 200
        assert str(page.url) == f"{console.url}/console/"
        assert "lee <small>(legal)</small>" in _text(page)
        cookie = next(c for c in browser.cookies.jar if c.name == SESSION_COOKIE)
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert cookie.path == "/console"


async def test_a_person_with_no_fairlane_role_is_not_signed_in(console: Console) -> None:
    async with _browser() as browser:
        page = await sign_in(browser, console.url, "nobody")
        assert page.status_code == 401
        assert "holds no Fairlane role" in _text(page)
        assert SESSION_COOKIE not in {c.name for c in browser.cookies.jar}


async def test_a_callback_this_browser_did_not_start_is_refused(console: Console) -> None:
    async with _browser() as browser:
        page = await browser.get(f"{console.url}/console/auth/callback?code=abc&state=xyz")
        assert page.status_code == 401
        assert "not started in this browser" in _text(page)


async def test_a_callback_with_another_state_is_refused(console: Console) -> None:
    async with _browser() as browser:
        started = await browser.get(f"{console.url}/console/auth/start")
        assert started.status_code == 303
        page = await browser.get(f"{console.url}/console/auth/callback?code=abc&state=forged")
        assert page.status_code == 401
        assert "does not match this browser's sign-in" in _text(page)


async def test_a_signed_out_visitor_sees_only_the_sign_in_page(console: Console) -> None:
    async with _browser() as browser:
        for path in ("/console/", "/console/models", "/console/audit?incident=inc-x-1"):
            page = await browser.get(f"{console.url}{path}")
            assert page.status_code == 401
            assert "Sign in with single sign-on" in _text(page)
            assert "Incidents</a>" not in _text(page)


async def test_a_forged_session_cookie_is_refused_with_a_reason(console: Console) -> None:
    async with _browser() as browser:
        await sign_in(browser, console.url, "lee")
        real = browser.cookies.get(SESSION_COOKIE, path="/console")
        assert real
        forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
        browser.cookies.clear()
        page = await browser.get(
            f"{console.url}/console/", headers={"Cookie": f"{SESSION_COOKIE}={forged}"}
        )
        assert page.status_code == 401
        assert "its signature is wrong" in _text(page)


async def test_a_cookie_replayed_after_sign_out_is_refused(console: Console) -> None:
    async with _browser() as browser:
        page = await sign_in(browser, console.url, "lee")
        cookie = browser.cookies.get(SESSION_COOKIE, path="/console")
        out = await browser.post(
            f"{console.url}/console/sign-out", data={"csrf_token": csrf_token(page)}
        )
        assert out.status_code == 200 and "You are signed out" in _text(out)
    async with _browser() as thief:
        page = await thief.get(
            f"{console.url}/console/", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}
        )
        assert page.status_code == 401
        assert "this session was signed out" in _text(page)


@pytest.mark.parametrize(
    ("moved", "message"),
    [
        ({"last_seen_at": timedelta(hours=1)}, "expired after a period without activity"),
        (
            {"started_at": timedelta(days=2), "last_seen_at": timedelta(0)},
            "reached its maximum length",
        ),
    ],
)
async def test_an_expired_session_is_refused(
    console: Console, moved: dict[str, timedelta], message: str
) -> None:
    async with _browser() as browser:
        await sign_in(browser, console.url, "lee")
        _backdate(console, **moved)
        page = await browser.get(f"{console.url}/console/")
        assert page.status_code == 401
        assert message in _text(page)
        again = await browser.get(f"{console.url}/console/")
        assert again.status_code == 401  # the cookie was cleared, the session ended


async def test_forms_without_the_csrf_token_change_nothing(console: Console) -> None:
    trail = console.api.trail
    before = len(trail.records())
    async with _browser() as browser:
        await sign_in(browser, console.url, "ivan")
        for path, form in (
            ("/console/incidents/inc-x-1/canary", {"action": "pause", "reason": "r"}),
            (
                "/console/incidents/inc-x-1/canary",
                {"action": "pause", "reason": "r", "csrf_token": "x"},
            ),
            ("/console/sign-out", {}),
        ):
            page = await browser.post(f"{console.url}{path}", data=form)
            assert page.status_code == 403, path
            assert "did not carry your session's CSRF token" in _text(page)
            assert "Nothing was changed" in _text(page)
        still = await browser.get(f"{console.url}/console/")
        assert still.status_code == 200  # the sign-out without a token did not sign out
    assert len(trail.records()) == before


async def test_the_server_refuses_a_control_to_a_role_that_may_not_use_it(
    console: Console,
) -> None:
    async with _browser() as browser:
        page = await sign_in(browser, console.url, "aude")
        csrf = csrf_token(page)
        refused = await browser.post(
            f"{console.url}/console/incidents/inc-x-1/canary",
            data={"action": "pause", "reason": "r", "csrf_token": csrf},
        )
        assert refused.status_code == 403
        assert "aude holds [auditor]; this needs one of [incident_commander]" in _text(refused)
        refused = await browser.post(
            f"{console.url}/console/incidents/inc-x-1/signoff",
            data={"role": "legal", "decision": "approve", "csrf_token": csrf},
        )
        assert refused.status_code == 403


async def test_bad_filters_are_named(console: Console) -> None:
    async with _browser() as browser:
        await sign_in(browser, console.url, "lee")
        page = await browser.get(f"{console.url}/console/?phase=nonsense")
        assert page.status_code == 422 and "phase: 'nonsense' is not one of" in _text(page)
        page = await browser.get(f"{console.url}/console/?model=x'%20OR%201=1")
        assert page.status_code == 422 and "model:" in _text(page)

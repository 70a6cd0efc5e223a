"""The console's reading pages over HTTP, signed in through the real provider: a long
trail is shown a page at a time with working links and a search that pages; refusals
and failures are HTML pages with their status and reason while the JSON API keeps
JSON; and every page passes the accessibility checks."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.tokens import Principal, Role, issue_token
from audit.browse import PAGE_SIZE
from config import Settings
from console.sessions import SESSION_COOKIE
from contracts.audit import AuditEvent
from contracts.model import ModelManifest
from contracts.watch import WATCH_WORKFLOW, watch_workflow_id
from incidents.watch import WatchQueues, watch_input
from stack.loopback import free_port
from store.db import create_tables, make_engine
from tests.fixtures.accessibility import problems
from tests.fixtures.console import Console, awaiting_signoff, incident_state, open_incident
from tests.fixtures.oidc import sign_in
from tests.fixtures.services import RouterService

pytestmark = pytest.mark.integration
NOTES = 450


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


def _notes(incident: str, count: int) -> list[AuditEvent]:
    """A long trail: ``count`` records by a reviewer, after the incident's own."""
    return [
        AuditEvent(
            event_id=f"{incident}:note:{i}",
            incident_id=incident,
            kind="review.note",
            actor="reviewer-7" if i % 50 == 0 else "reviewer",
            detail={"note": f"note number {i:04d}"},
            at=datetime.now(UTC),
        )
        for i in range(count)
    ]


def _rows(page: httpx.Response) -> list[str]:
    """The timeline's or trail's body rows, as text."""
    body = page.text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [html.unescape(re.sub(r"<[^>]+>", " ", row)) for row in body.split("</tr>")[:-1]]


def _link(page: httpx.Response, text: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)"[^>]*>{re.escape(text)}</a>', page.text)
    return html.unescape(match.group(1)) if match else None


def _text(page: httpx.Response) -> str:
    return html.unescape(page.text)


def _notes_on(page: httpx.Response) -> list[int]:
    return [int(n) for row in _rows(page) for n in re.findall(r"note number (\d{4})", row)]


async def test_a_long_timeline_is_shown_a_page_at_a_time(console: Console) -> None:
    incident = await open_incident(console)
    await incident_state(console, incident, awaiting_signoff)
    console.api.trail.append_many(_notes(incident, NOTES))
    async with httpx.AsyncClient(timeout=30, base_url=console.url) as browser:
        await sign_in(browser, console.url, "aude")
        newest = await browser.get(f"/console/incidents/{incident}")
        assert newest.status_code == 200
        # The incident's own records may still land after the notes (a notification's).
        on_newest = _notes_on(newest)
        assert on_newest == list(range(NOTES - len(on_newest), NOTES))
        assert len(on_newest) > PAGE_SIZE - 10
        assert "(newest page)" in _text(newest) and _link(newest, "Newer records") is None
        assert "incident.opened" not in _text(newest)  # it is on the oldest page

        pages = [newest]
        while (older := _link(pages[-1], "Older records")) is not None and len(pages) < 5:
            assert older.endswith("#timeline-h") and "before=" in older
            pages.append(await browser.get(older))
            assert pages[-1].status_code == 200 and _link(pages[-1], "Newer records")
        seen = [n for page in reversed(pages) for n in _notes_on(page)]
        assert seen == list(range(NOTES))  # no record twice, none missed
        oldest = pages[-1]
        assert "incident.opened" in _text(oldest) and _link(oldest, "Oldest") is None

        newer = _link(oldest, "Newer records")
        assert newer is not None and "after=" in newer
        forward = await browser.get(newer)
        assert _notes_on(forward) == _notes_on(pages[-2])

        found = await browser.get(
            f"/console/incidents/{incident}", params={"actor": "reviewer-7", "q": "NUMBER"}
        )
        assert _notes_on(found) == [0, 50, 100, 150, 200, 250, 300, 350, 400]
        assert "9 shown of 9 records" in _text(found)
        assert problems(newest.text) == [] and problems(found.text) == []


async def test_the_audit_trail_pages_and_its_search_pages_too(console: Console) -> None:
    incident = await open_incident(console)
    await incident_state(console, incident, awaiting_signoff)
    console.api.trail.append_many(_notes(incident, NOTES))
    async with httpx.AsyncClient(timeout=30, base_url=console.url) as browser:
        await sign_in(browser, console.url, "aude")
        trail = await browser.get("/console/audit", params={"incident": incident})
        assert trail.status_code == 200 and len(_rows(trail)) == PAGE_SIZE
        assert "Verified:" in _text(trail)

        search = {"incident": incident, "kind": "review", "q": "note number 0"}
        first = await browser.get("/console/audit", params=search)
        assert len(_rows(first)) == PAGE_SIZE  # notes 0000 to 0449 match "note number 0"
        older = _link(first, "Older records")
        assert older is not None
        assert "kind=review" in older and "incident=" in older and "q=note+number+0" in older
        rest = await browser.get(older)
        assert _notes_on(first) == list(range(NOTES - PAGE_SIZE, NOTES))
        assert _notes_on(rest) == list(range(NOTES - 2 * PAGE_SIZE, NOTES - PAGE_SIZE))

        prefix = "incident."  # a kind's start finds every kind it starts
        wanted = [r.kind for r in console.api.trail.records(incident) if r.kind.startswith(prefix)]
        by_kind = await browser.get("/console/audit", params={"incident": incident, "kind": prefix})
        kinds = [row.split()[4] for row in _rows(by_kind)]  # seq, date, time, "UTC", kind
        assert kinds == wanted and "incident.opened" in kinds
        assert problems(trail.text) == [] and problems(by_kind.text) == []


def _is_page(answer: httpx.Response, status: int, *needles: str) -> str:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    text = _text(answer)
    for needle in needles:
        assert needle in text, (needle, text[-1500:])
    assert problems(answer.text) == []
    return text


async def test_refusals_are_pages_that_say_why(console: Console) -> None:
    async with httpx.AsyncClient(timeout=30, base_url=console.url) as browser:
        await sign_in(browser, console.url, "lee")
        _is_page(
            await browser.get("/console/audit"),
            403,
            "Not allowed",
            "this needs one of [auditor, incident_commander, admin]",
        )
        _is_page(
            await browser.get("/console/incidents/inc-not-there-1"),
            404,
            "Not found",
            "no incident 'inc-not-there-1'",
            "lee",  # still signed in: the header shows who
        )
        _is_page(
            await browser.get("/console/no-such-page"),
            404,
            "There is no console page at /console/no-such-page",
        )
        _is_page(
            await browser.get("/console/incidents/NOT_AN_ID"),
            422,
            "Invalid input",
            "incident_id (in the address): String should match pattern",
        )
        _is_page(await browser.post("/console/models"), 405, "POST is not possible")
    async with httpx.AsyncClient(timeout=30, base_url=console.url) as browser:
        await sign_in(browser, console.url, "aude")
        _is_page(
            await browser.get("/console/audit", params={"incident": "inc-x", "before": "soon"}),
            422,
            "before (in the query): Input should be a valid integer",
        )
        _is_page(
            await browser.get(
                "/console/audit", params={"incident": "inc-x", "before": 9, "after": 2}
            ),
            422,
            "after: a page starts `before` a record or `after` one, not both",
        )
        _is_page(
            await browser.get("/console/audit", params={"incident": "Robert'); DROP"}),
            422,
            "incident: ",
        )


async def test_the_json_api_keeps_json_even_for_a_browser(console: Console) -> None:
    wants_html = {"Accept": "text/html,application/xhtml+xml"}
    async with console.api.client() as client:
        missing = await client.get("/v1/no-such-route", headers=wants_html)
        assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
        bad = await client.get(
            "/v1/incidents/NOT_AN_ID", headers={**wants_html, **console.api.headers("auditor")}
        )
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "incident_id"]
        forbidden = await client.get("/v1/trail/verify", headers=console.api.headers("legal1"))
        assert forbidden.status_code == 403 and "needs one of" in forbidden.json()["detail"]
        # Outside /v1 and /console, a browser gets a page and anything else JSON.
        page = await client.get("/nowhere", headers=wants_html)
        _is_page(page, 404, "There is no console page at /nowhere")
        assert (await client.get("/nowhere")).json() == {"detail": "Not Found"}


async def test_temporal_unavailable_is_a_page_that_says_retry(tmp_path: Path) -> None:
    """Temporal down (nothing listens at its address): the console says to retry, with
    the same ``Retry-After`` the API gives; the API still answers JSON."""
    settings = Settings(data_dir=tmp_path, temporal_address=f"127.0.0.1:{free_port()}")
    create_tables(make_engine(settings.resolved_database_url))
    app = create_app(settings)
    cookie, _ = app.state.console_sessions.open(Principal(name="aude", roles=[Role.AUDITOR]))
    token = issue_token(settings.resolved_tokens_file, "aude", [Role.AUDITOR])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fairlane") as client:
        page = await client.get("/console/incidents/inc-anything", cookies={SESSION_COOKIE: cookie})
        _is_page(
            page, 503, "Unavailable for now", "Temporal is unavailable", "try again in 5 seconds"
        )
        assert page.headers["Retry-After"] == "5"
        api = await client.get(
            "/v1/incidents/inc-anything", headers={"Authorization": f"Bearer {token}"}
        )
        assert api.status_code == 503 and "Temporal is unavailable" in api.json()["detail"]
        assert api.headers["Retry-After"] == "5"


async def test_a_failure_nothing_handled_is_a_page_that_shows_nothing_of_it(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, temporal_address=f"127.0.0.1:{free_port()}")
    app = create_app(settings)

    def broken() -> None:
        raise RuntimeError("secret internals: /etc/fairlane/key")

    app.add_api_route("/console/broken", broken)
    app.add_api_route("/v1/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://fairlane") as client:
        text = _is_page(await client.get("/console/broken"), 500, "Something went wrong")
        assert "secret internals" not in text
        api = await client.get("/v1/broken")
        assert api.status_code == 500 and api.text == "Internal Server Error"


async def test_a_watch_nobody_polls_is_named_not_waited_for(
    console: Console, dev_env: WorkflowEnvironment
) -> None:
    """A watch whose worker is gone answers no query: the models page says so within its
    read timeout instead of hanging on it."""
    async with console.api.client() as client:
        listed = await client.get("/v1/models", headers=console.api.headers("admin"))
        manifest = ModelManifest.model_validate(listed.json()[0])
        stray = manifest.model_copy(update={"id": "stray-watch"})
        registered = await client.post(
            "/v1/models",
            headers=console.api.headers("admin"),
            json=stray.model_dump(mode="json"),
            params={"allow_undeployed": "true"},
        )
        assert registered.status_code == 201, registered.text
    watch = dev_env.client.get_workflow_handle(watch_workflow_id(stray.id))
    await watch.terminate("moved to a queue nobody polls")
    await dev_env.client.start_workflow(
        WATCH_WORKFLOW,
        watch_input(stray, WatchQueues(watch="nobody-polls", bookkeeping="nobody-polls")),
        id=watch_workflow_id(stray.id),
        task_queue="nobody-polls",
    )
    try:
        async with httpx.AsyncClient(timeout=30, base_url=console.url) as browser:
            await sign_in(browser, console.url, "aude")
            page = await browser.get("/console/models")
        assert page.status_code == 200
        assert "the watch did not answer within 3 s" in _text(page)
        assert "credit-limit" in _text(page)  # the other models are shown as ever
    finally:
        await watch.terminate("test over")

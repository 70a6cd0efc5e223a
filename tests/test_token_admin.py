"""Machine principals' tokens through the API: issue, list, expire, revoke (admin only).

The app is the real one (create_app) over ASGI, with its trail and tokens file in a
temporary data directory; these routes need no Temporal.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest_asyncio

from api.app import create_app
from api.tokens import Role, issue_token
from audit.trail import AuditTrail
from config import Settings
from store.db import create_tables, make_engine


@dataclass
class Admin:
    client: httpx.AsyncClient
    settings: Settings
    tokens: dict[str, str]
    app_trail: AuditTrail

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def trail(self) -> list[dict[str, object]]:
        return [
            {"kind": r.kind, "actor": r.actor, **json.loads(r.detail)}
            for r in self.app_trail.records("tokens")
        ]


@pytest_asyncio.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    settings = Settings(data_dir=tmp_path, outside_end_check_s=0)
    create_tables(make_engine(settings.resolved_database_url))
    tokens = {
        "admin": issue_token(settings.resolved_tokens_file, "root", [Role.ADMIN]),
        "ic": issue_token(settings.resolved_tokens_file, "ic", [Role.INCIDENT_COMMANDER]),
    }
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://fairlane"
    ) as client:
        yield Admin(client, settings, tokens, app.state.trail)


async def _issue(admin: Admin, **body: object) -> dict[str, object]:
    answer = await admin.client.post(
        "/v1/tokens",
        headers=admin.as_("admin"),
        json={"name": "prom-alerts", "roles": ["auditor"], "reason": "new source", **body},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _works(admin: Admin, token: str) -> int:
    answer = await admin.client.get("/v1/playbooks", headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


async def test_an_issued_token_works_is_listed_without_secrets_and_is_audited(
    admin: Admin,
) -> None:
    issued = await _issue(admin)
    token = str(issued["token"])
    assert await _works(admin, token) == 200
    assert issued["status"] == "active" and issued["issued_by"] == "root"
    listed = await admin.client.get("/v1/tokens", headers=admin.as_("admin"))
    assert listed.status_code == 200
    assert token not in listed.text and "sha256" not in listed.text
    assert {t["name"] for t in listed.json()} == {"root", "ic", "prom-alerts"}
    [record] = admin.trail()
    assert record["kind"] == "token.issued" and record["actor"] == "root"
    assert record["token_id"] == issued["id"] and record["reason"] == "new source"
    assert token not in json.dumps(record)


async def test_a_revoked_token_is_refused_at_once(admin: Admin) -> None:
    issued = await _issue(admin)
    revoked = await admin.client.post(
        f"/v1/tokens/{issued['id']}/revoke",
        headers=admin.as_("admin"),
        json={"reason": "leaked in a CI log"},
    )
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert await _works(admin, str(issued["token"])) == 401
    again = await admin.client.post(
        f"/v1/tokens/{issued['id']}/revoke", headers=admin.as_("admin"), json={"reason": "x"}
    )
    assert again.status_code == 409 and "already revoked" in again.json()["detail"]
    assert [r["kind"] for r in admin.trail()] == ["token.issued", "token.revoked"]


async def test_an_expired_token_is_refused(admin: Admin) -> None:
    issued = await _issue(admin)
    later = datetime.now(UTC) + timedelta(days=1)
    moved = await admin.client.post(
        f"/v1/tokens/{issued['id']}/expire",
        headers=admin.as_("admin"),
        json={"expires_at": later.isoformat(), "reason": "rotate tomorrow"},
    )
    assert moved.status_code == 200 and moved.json()["status"] == "active"
    assert await _works(admin, str(issued["token"])) == 200
    now = await admin.client.post(
        f"/v1/tokens/{issued['id']}/expire", headers=admin.as_("admin"), json={"reason": "now"}
    )
    assert now.status_code == 200 and now.json()["status"] == "expired"
    assert await _works(admin, str(issued["token"])) == 401
    past = issue_token(
        admin.settings.resolved_tokens_file,
        "old",
        [Role.AUDITOR],
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    assert await _works(admin, past) == 401
    assert [r["kind"] for r in admin.trail()] == [
        "token.issued",
        "token.expiry_set",
        "token.expiry_set",
    ]


async def test_bad_requests_name_the_field_and_change_nothing(admin: Admin) -> None:
    before = (await admin.client.get("/v1/tokens", headers=admin.as_("admin"))).json()
    cases = [
        ("POST", "/v1/tokens", {"name": "x", "roles": [], "reason": "r"}, 422, "roles"),
        ("POST", "/v1/tokens", {"name": "x", "roles": ["god"], "reason": "r"}, 422, "roles"),
        ("POST", "/v1/tokens", {"name": "x", "roles": ["auditor"]}, 422, "reason"),
        ("POST", "/v1/tokens", {"name": "a b", "roles": ["auditor"], "reason": "r"}, 422, "name"),
        (
            "POST",
            "/v1/tokens/tok_0123456789ab/expire",
            {"expires_at": "2030-01-01T00:00:00", "reason": "r"},
            422,
            "expires_at",
        ),
        ("POST", "/v1/tokens/tok_0123456789ab/revoke", {"reason": "r"}, 404, "no token"),
        ("POST", "/v1/tokens/not-an-id/revoke", {"reason": "r"}, 422, "token_id"),
    ]
    for method, path, body, code, named in cases:
        answer = await admin.client.request(method, path, headers=admin.as_("admin"), json=body)
        assert answer.status_code == code, (path, body, answer.text)
        assert named in answer.text, answer.text
    after = (await admin.client.get("/v1/tokens", headers=admin.as_("admin"))).json()
    assert after == before and admin.trail() == []


async def test_only_admins_manage_tokens(admin: Admin) -> None:
    for method, path in (
        ("GET", "/v1/tokens"),
        ("POST", "/v1/tokens"),
        ("POST", "/v1/tokens/tok_0123456789ab/revoke"),
    ):
        answer = await admin.client.request(
            method,
            path,
            headers=admin.as_("ic"),
            json={"name": "x", "roles": ["admin"], "reason": "r"},
        )
        assert answer.status_code == 403, (path, answer.text)
    assert admin.trail() == []

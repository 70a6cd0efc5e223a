"""What Slack posts back to Fairlane: signed requests only, recorded, approving nothing.

The API is served over real HTTP; requests are signed as Slack signs them (v0 HMAC-SHA256
of ``v0:{timestamp}:{body}`` with the app's signing secret).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from audit.records import AuditRecord
from audit.trail import AuditTrail
from config import Settings
from notifications.slack import APPROVE_ACTION
from notifications.slack_signature import slack_signature
from stack.loopback import free_port
from tests.fixtures.services import serve

SECRET = SecretStr("8f742231b10e8888abcd99yyyzzz85a5")
INCIDENT = "inc-slack-1"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, AuditTrail]]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("slack-api"),
        temporal_address=f"127.0.0.1:{free_port()}",  # not needed by this route
        outside_end_check_s=0,
        slack_signing_secret=SECRET,
    )
    app = create_app(settings)
    with serve(app, free_port()) as url:
        yield url, app.state.trail


def click_body(action_id: str = APPROVE_ACTION, value: str = INCIDENT) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0LEGAL", "username": "dana", "team_id": "T0CORP"},
        "team": {"id": "T0CORP", "domain": "corp"},
        "actions": [
            {"action_id": action_id, "block_id": "fairlane-console", "value": value},
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def post(url: str, body: bytes, timestamp: int, signature: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/integrations/slack/actions",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": signature,
        },
        timeout=30,
    )


def slack_records(trail: AuditTrail) -> list[AuditRecord]:
    return [r for r in trail.records(incident_id=INCIDENT) if r.kind == "slack.action"]


def test_a_signed_click_is_acknowledged_and_recorded_but_approves_nothing(
    api: tuple[str, AuditTrail],
) -> None:
    url, trail = api
    body, now = click_body(), int(time.time())
    answer = post(url, body, now, slack_signature(SECRET, str(now), body))
    assert answer.status_code == 200, answer.text
    records = slack_records(trail)
    assert len(records) == 1
    record = records[0]
    assert record.actor == "slack:T0CORP:U0LEGAL"
    detail = json.loads(record.detail)
    assert detail["action"] == APPROVE_ACTION and "approves nothing" in detail["note"]
    # The same signed request again (within its window) records nothing new.
    assert post(url, body, now, slack_signature(SECRET, str(now), body)).status_code == 200
    assert len(slack_records(trail)) == 1
    kinds = {r.kind for r in trail.records(incident_id=INCIDENT)}
    assert kinds == {"slack.action"}  # no sign-off, nothing else


def test_a_bad_signature_is_401_and_changes_nothing(api: tuple[str, AuditTrail]) -> None:
    url, trail = api
    before = len(slack_records(trail))
    body, now = click_body(value="inc-slack-forged"), int(time.time())
    forged = slack_signature(SecretStr("not-the-signing-secret"), str(now), body)
    answer = post(url, body, now, forged)
    assert answer.status_code == 401
    assert "X-Slack-Signature does not match" in answer.json()["detail"]
    # Signed, then changed on the way: also refused.
    tampered = post(url, click_body(), now, slack_signature(SECRET, str(now), body))
    assert tampered.status_code == 401
    assert len(slack_records(trail)) == before
    assert not list(trail.records(incident_id="inc-slack-forged"))


def test_an_old_timestamp_is_401_even_with_a_good_signature(api: tuple[str, AuditTrail]) -> None:
    url, trail = api
    before = len(slack_records(trail))
    body, old = click_body(), int(time.time()) - 6 * 60
    answer = post(url, body, old, slack_signature(SECRET, str(old), body))
    assert answer.status_code == 401
    assert "X-Slack-Request-Timestamp" in answer.json()["detail"]
    assert "more than the 300s" in answer.json()["detail"]
    assert len(slack_records(trail)) == before


def test_missing_headers_are_401_and_a_bad_payload_is_400_naming_the_field(
    api: tuple[str, AuditTrail],
) -> None:
    url, _ = api
    missing = httpx.post(f"{url}/v1/integrations/slack/actions", content=click_body(), timeout=30)
    assert missing.status_code == 401 and "missing" in missing.json()["detail"]
    now = int(time.time())
    body = urlencode({"payload": json.dumps({"type": "block_actions", "actions": []})}).encode()
    bad = post(url, body, now, slack_signature(SECRET, str(now), body))
    assert bad.status_code == 400 and "payload.user" in bad.json()["detail"]


def test_without_a_signing_secret_nothing_is_accepted(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, temporal_address=f"127.0.0.1:{free_port()}", outside_end_check_s=0
    )
    with serve(create_app(settings), free_port()) as url:
        body, now = click_body(), int(time.time())
        answer = post(url, body, now, slack_signature(SECRET, str(now), body))
    assert answer.status_code == 401 and "not configured" in answer.json()["detail"]

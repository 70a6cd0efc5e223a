"""Channel secrets mounted as files (Kubernetes, Docker secrets): read when a worker
starts, each refused with an error naming the channel and the field, and never in a log
or a repr; the API, which only checks a playbook's references, never opens them.

The secrets read from files are then used for real: an SMTP login (aiosmtpd, STARTTLS
and AUTH), a post to the Slack stand-in at the webhook path from the file, a PagerDuty
event carrying the routing key from the file, and Slack's signature checked with the
signing secret from its file."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import structlog
from pydantic import SecretStr, ValidationError
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from audit.trail import AuditTrail
from config import Settings
from config.secret_files import SecretFileError
from contracts.channels import ChannelRef
from contracts.steps import Notification
from notifications.slack_signature import slack_signature, verify_slack_request
from stack.worker import build_worker
from store.db import create_tables, make_engine
from tests.fixtures.receivers import Receiver, pagerduty_receiver, slack_receiver
from tests.fixtures.smtp import Mailbox, smtp_server

SMTP_PASSWORD = "filed-smtp-pa55word"
SLACK_PATH = "/services/T111/B111/f1led-w3bh00k-secret"
ROUTING_KEY = "F1LEDR0UT1NGKEY0123456789abcdefA"
SIGNING_SECRET = "f1led-slack-signing-secret"
SECRETS = (SMTP_PASSWORD, "f1led-w3bh00k-secret", ROUTING_KEY, SIGNING_SECRET)


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailbox]:
    with smtp_server(tmp_path_factory.mktemp("smtp"), "fairlane", SMTP_PASSWORD) as box:
        yield box


@pytest.fixture(scope="module")
def slack() -> Iterator[Receiver]:
    with slack_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def pagerduty() -> Iterator[Receiver]:
    with pagerduty_receiver() as receiver:
        yield receiver


def secret_file(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content + "\n")  # mounted secrets often end with a newline
    path.chmod(0o600)
    return path


def declarations(
    folder: Path, box: Mailbox, slack: Receiver, pagerduty: Receiver
) -> dict[str, Any]:
    return {
        "legal": {
            "kind": "email",
            "host": box.host,
            "port": box.port,
            "ca_file": box.ca_file,
            "username": box.username,
            "password_file": str(secret_file(folder, "smtp", SMTP_PASSWORD)),
            "sender": "fairlane@example.org",
            "to": ["legal@example.org"],
        },
        "room": {
            "kind": "slack",
            "webhook_url_file": str(secret_file(folder, "slack", slack.url + SLACK_PATH)),
        },
        "oncall": {
            "kind": "pagerduty",
            "routing_key_file": str(secret_file(folder, "pd", ROUTING_KEY)),
            "events_url": pagerduty.url + "/v2/enqueue",
        },
    }


def settings_from_env(monkeypatch: pytest.MonkeyPatch, channels: dict[str, Any]) -> Settings:
    monkeypatch.setenv("FAIRLANE_NOTIFICATION_CHANNELS", json.dumps(channels))
    return Settings()


def env(activity_id: str) -> ActivityEnvironment:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info, workflow_id="inc-files-1", activity_id=activity_id
    )
    return environment


def note(kind: str, channel_id: str) -> Notification:
    return Notification(
        incident_id="inc-files-1",
        channel="incident",
        severity="sev2",
        subject="Canary rolled back",
        message="The candidate breached at 5%.",
        to=ChannelRef(kind=kind, id=channel_id),
        event="containment_failing",
    )


async def test_every_channel_secret_read_from_its_file_is_what_the_channel_uses(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mailbox: Mailbox,
    slack: Receiver,
    pagerduty: Receiver,
) -> None:
    monkeypatch.setenv(
        "FAIRLANE_SLACK_SIGNING_SECRET_FILE", str(secret_file(tmp_path, "sign", SIGNING_SECRET))
    )
    with structlog.testing.capture_logs() as logs:
        settings = settings_from_env(monkeypatch, declarations(tmp_path, mailbox, slack, pagerduty))
        activities = NotifyActivities(None, channels=settings.channel_resolver())
        sent_mail = len(mailbox.messages)
        receipts = [
            await env(f"files:{i}").run(activities.send_notification, note(kind, channel_id))
            for i, (kind, channel_id) in enumerate(
                [("email", "legal"), ("slack", "room"), ("pagerduty", "oncall")]
            )
        ]

    # SMTP: the login with the password from the file succeeded, over STARTTLS.
    assert len(mailbox.messages) == sent_mail + 1 and mailbox.logins[-1] == "fairlane"
    # Slack: posted to the webhook path the file holds.
    assert slack.invalid == [] and slack.received[-1].path == SLACK_PATH.lstrip("/")
    # PagerDuty: the event carries the routing key the file holds.
    assert pagerduty.invalid == [] and pagerduty.received[-1].body["routing_key"] == ROUTING_KEY
    # The Slack app's signing secret from its file verifies what Slack signs with it.
    assert settings.slack_signing_secret is not None
    body, now = b"payload=%7B%7D", time.time()
    stamp = str(int(now))
    signature = slack_signature(settings.slack_signing_secret, stamp, body)
    verify_slack_request(settings.slack_signing_secret, body, stamp, signature, now, 300)

    # None of the secrets is in a log line, a repr of the settings, or a receipt.
    seen = repr(logs) + repr(settings) + str(settings.model_dump()) + repr(receipts)
    for secret in SECRETS:
        assert secret not in seen
    assert [entry["sink"] for entry in logs if entry["event"] == "notification"] == [
        "email:legal",
        "slack:room",
        "pagerduty:oncall",
    ]


CHANNEL_FIELDS = [
    ("email", "password", {"host": "smtp.example", "sender": "f@example.org", "to": ["a@b.c"]}),
    ("slack", "webhook_url", {}),
    ("pagerduty", "routing_key", {}),
]


def one_channel(kind: str, declared: dict[str, Any]) -> dict[str, Any]:
    return {"room-1": {"kind": kind, **declared}}


def refusal(monkeypatch: pytest.MonkeyPatch, channels: dict[str, Any]) -> str:
    """Why every process (worker or API) refuses these declarations."""
    with pytest.raises(ValidationError) as refused:
        settings_from_env(monkeypatch, channels)
    return str(refused.value)


def worker_refusal(monkeypatch: pytest.MonkeyPatch, channels: dict[str, Any]) -> str:
    """Why a worker, which reads the secret files when it starts, refuses to start."""
    settings = settings_from_env(monkeypatch, channels)
    with pytest.raises(SecretFileError) as refused:
        settings.channel_resolver()
    return str(refused.value)


@pytest.mark.parametrize(("kind", "field", "rest"), CHANNEL_FIELDS)
def test_a_missing_empty_or_unreadable_secret_file_stops_the_worker_naming_channel_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, field: str, rest: dict[str, Any]
) -> None:
    empty = secret_file(tmp_path, "empty", "  ")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00secret")
    cases = {
        str(tmp_path / "absent"): "does not exist",
        str(empty): "is empty",
        str(tmp_path): "is a directory, not a file",
        str(binary): "is not UTF-8 text",
    }
    for path, why in cases.items():
        channels = one_channel(kind, {**rest, f"{field}_file": path})
        message = worker_refusal(monkeypatch, channels)
        assert message == f"notification channel 'room-1': {field}_file {path!r} {why}"
        # The API only checks a playbook's references: it never opens the files.
        api = settings_from_env(monkeypatch, channels).channel_resolver(read_secrets=False)
        assert api.refs == [f"{kind}:room-1"]
    relative = one_channel(kind, {**rest, f"{field}_file": "relative/secret"})
    assert f"{field}_file 'relative/secret' must be an absolute path" in refusal(
        monkeypatch, relative
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_secret_file_without_read_permission_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = secret_file(tmp_path, "locked", ROUTING_KEY)
    locked.chmod(0)
    channels = one_channel("pagerduty", {"routing_key_file": str(locked)})
    message = worker_refusal(monkeypatch, channels)
    assert "routing_key_file" in message and "permission denied" in message


def test_the_worker_does_not_start_with_a_bad_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build_worker reads the files before it builds anything that polls Temporal."""
    channels = one_channel("slack", {"webhook_url_file": str(tmp_path / "absent")})
    settings = settings_from_env(monkeypatch, channels).model_copy(
        update={"router_token": SecretStr("t"), "data_dir": tmp_path}
    )
    engine = make_engine(settings.resolved_database_url)
    create_tables(engine)
    with pytest.raises(SystemExit) as stopped:
        build_worker(cast(Client, None), settings, AuditTrail(engine))
    assert str(stopped.value) == (
        f"the worker cannot start: notification channel 'room-1': webhook_url_file "
        f"{str(tmp_path / 'absent')!r} does not exist"
    )
    engine.dispose()


@pytest.mark.parametrize(("kind", "field", "rest"), CHANNEL_FIELDS)
def test_a_secret_given_both_inline_and_as_a_file_is_refused_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, field: str, rest: dict[str, Any]
) -> None:
    inline = "inl1ne-s3cret-value"
    both = {**rest, field: inline, f"{field}_file": str(secret_file(tmp_path, "s", "x"))}
    message = refusal(monkeypatch, one_channel(kind, both))
    assert f"notification channel 'room-1': give `{field}` or `{field}_file`, not both" in message
    assert inline not in message


@pytest.mark.parametrize("kind", ["slack", "pagerduty"])
def test_a_channel_whose_credential_is_given_neither_way_is_refused(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    field = "webhook_url" if kind == "slack" else "routing_key"
    message = refusal(monkeypatch, one_channel(kind, {}))
    assert "room-1" in message and f"give `{field}` or `{field}_file`" in message


def test_the_slack_signing_secret_file_is_checked_like_the_channels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIRLANE_SLACK_SIGNING_SECRET_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValidationError, match=r"slack_signing_secret_file .* does not exist"):
        Settings()
    monkeypatch.setenv("FAIRLANE_SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv(
        "FAIRLANE_SLACK_SIGNING_SECRET_FILE", str(secret_file(tmp_path, "s", SIGNING_SECRET))
    )
    with pytest.raises(ValidationError) as both:
        Settings()
    assert "give `slack_signing_secret` or `slack_signing_secret_file`, not both" in str(both.value)
    assert SIGNING_SECRET not in str(both.value)

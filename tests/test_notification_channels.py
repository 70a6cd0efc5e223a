"""Notifications on declared channels, against real receivers: an SMTP server (aiosmtpd,
STARTTLS and AUTH required) and local Slack and PagerDuty stand-ins that validate every
payload against the services' documented schemas (tests/fixtures/schemas)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr, ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from config import Settings
from config.channels import ChannelResolver, EmailChannel, PagerDutyChannel, SlackChannel
from contracts.channels import ChannelRef, NotificationEvent
from contracts.steps import Notification
from notifications.email import message_id
from notifications.messages import OutgoingMessage
from notifications.slack import APPROVE_ACTION, OPEN_ACTION, REJECT_ACTION
from stack.loopback import free_port
from tests.fixtures.receivers import Receiver, pagerduty_receiver, slack_receiver
from tests.fixtures.smtp import Mailbox, smtp_server

CONSOLE = "https://fairlane.example.org"
SMTP_PASSWORD = "smtp-secret-pa55word"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"  # PagerDuty integration keys are 32 chars
SLACK_PATH = "/services/T000/B000/sl4ck-w3bh00k-secret"


def note(to: ChannelRef | None, event: NotificationEvent = "message") -> Notification:
    return Notification(
        incident_id="inc-credit-7",
        channel="signoff",
        severity="sev1",
        subject="Sign-off requested: ship the candidate",
        message="Incident inc-credit-7 needs sign-off from legal (1).",
        to=to,
        event=event,
    )


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


def email_channel(box: Mailbox, password: str = SMTP_PASSWORD) -> EmailChannel:
    return EmailChannel(
        kind="email",
        host=box.host,
        port=box.port,
        ca_file=box.ca_file,
        username=box.username,
        password=SecretStr(password),
        sender="fairlane@example.org",
        to=["legal@example.org", "counsel@example.org"],
    )


@pytest.fixture(scope="module")
def activities(mailbox: Mailbox, slack: Receiver, pagerduty: Receiver) -> NotifyActivities:
    channels = ChannelResolver(
        {
            "legal-team": email_channel(mailbox),
            "wrong-login": email_channel(mailbox, "not-the-password"),
            "incident-room": SlackChannel(
                kind="slack", webhook_url=SecretStr(slack.url + SLACK_PATH)
            ),
            "oncall": PagerDutyChannel(
                kind="pagerduty",
                routing_key=SecretStr(ROUTING_KEY),
                events_url=pagerduty.url + "/v2/enqueue",
            ),
        }
    )
    return NotifyActivities(None, channels=channels, console_url=CONSOLE)


def env(activity_id: str = "approve:4", attempt: int = 1) -> ActivityEnvironment:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info, workflow_id="inc-credit-7", activity_id=activity_id, attempt=attempt
    )
    return environment


async def test_email_arrives_over_starttls_with_auth_the_key_and_the_signoff_link(
    activities: NotifyActivities, mailbox: Mailbox
) -> None:
    ref = ChannelRef(kind="email", id="legal-team")
    receipt = await env().run(activities.send_notification, note(ref, "signoff_requested"))
    assert receipt.delivered_to == "email:legal-team" and receipt.idempotency_key
    email = mailbox.messages[-1]
    assert mailbox.tls_sessions[-1] is True and mailbox.logins[-1] == "fairlane"
    assert email["Idempotency-Key"] == receipt.idempotency_key
    expected_id = message_id(OutgoingMessage(note(ref), receipt.idempotency_key, link=""))
    assert email["Message-ID"] == expected_id
    assert email["To"] == "legal@example.org, counsel@example.org"
    body = email.get_content()
    assert f"{CONSOLE}/console/incidents/inc-credit-7/signoff" in body
    assert receipt.idempotency_key in body


async def test_a_resent_email_has_the_same_message_id_so_it_can_be_dropped(
    activities: NotifyActivities, mailbox: Mailbox
) -> None:
    ref = ChannelRef(kind="email", id="legal-team")
    first = await env("brief:2").run(activities.send_notification, note(ref))
    again = await env("brief:2", attempt=2).run(activities.send_notification, note(ref))
    assert first.idempotency_key == again.idempotency_key
    assert mailbox.messages[-1]["Message-ID"] == mailbox.messages[-2]["Message-ID"]
    assert (
        f"Open: {CONSOLE}/console/incidents/inc-credit-7\r\n" in mailbox.messages[-1].get_content()
    )


async def test_a_refused_smtp_login_is_final_and_never_shows_the_password(
    activities: NotifyActivities, mailbox: Mailbox
) -> None:
    sent = len(mailbox.messages)
    with pytest.raises(ApplicationError) as refused:
        await env().run(
            activities.send_notification, note(ChannelRef(kind="email", id="wrong-login"))
        )
    assert refused.value.type == "NotificationRejected" and refused.value.non_retryable
    assert "not-the-password" not in str(refused.value) and len(mailbox.messages) == sent


async def test_a_server_without_starttls_gets_neither_credentials_nor_mail(
    tmp_path: Path,
) -> None:
    """A channel that asks for STARTTLS refuses a server that does not offer it."""
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            raise AssertionError("mail was sent in clear")

    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        plain = Mailbox("127.0.0.1", port, "", "fairlane", SMTP_PASSWORD)
        channel = email_channel(plain).model_copy(update={"ca_file": None})
        activities = NotifyActivities(None, channels=ChannelResolver({"plain": channel}))
        with pytest.raises(ApplicationError) as refused:
            await env().run(
                activities.send_notification, note(ChannelRef(kind="email", id="plain"))
            )
    finally:
        controller.stop()
    assert refused.value.non_retryable and "STARTTLS" in str(refused.value)


async def test_slack_gets_valid_block_kit_with_approve_and_reject_links_to_the_console(
    activities: NotifyActivities, slack: Receiver
) -> None:
    ref = ChannelRef(kind="slack", id="incident-room")
    receipt = await env().run(activities.send_notification, note(ref, "signoff_requested"))
    assert receipt.delivered_to == "slack:incident-room" and receipt.status_code == 200
    assert slack.invalid == []
    got = slack.received[-1]
    assert got.path == SLACK_PATH.lstrip("/")
    assert got.headers["idempotency-key"] == receipt.idempotency_key
    actions = next(b for b in got.body["blocks"] if b["type"] == "actions")["elements"]
    signoff = f"{CONSOLE}/console/incidents/inc-credit-7/signoff"
    assert [(a["action_id"], a["url"]) for a in actions] == [
        (APPROVE_ACTION, signoff),
        (REJECT_ACTION, signoff),
    ]
    context = next(b for b in got.body["blocks"] if b["type"] == "context")
    assert receipt.idempotency_key and receipt.idempotency_key in context["elements"][0]["text"]


async def test_slack_messages_that_ask_nothing_link_to_the_incident_and_stay_in_limits(
    activities: NotifyActivities, slack: Receiver
) -> None:
    long = note(ChannelRef(kind="slack", id="incident-room"), "containment_failing")
    long = long.model_copy(update={"subject": "S" * 400, "message": "m" * 5000})
    await env().run(activities.send_notification, long)
    assert slack.invalid == []
    actions = next(b for b in slack.received[-1].body["blocks"] if b["type"] == "actions")
    assert [(a["action_id"], a["url"]) for a in actions["elements"]] == [
        (OPEN_ACTION, f"{CONSOLE}/console/incidents/inc-credit-7")
    ]


async def test_pagerduty_triggers_acknowledges_and_resolves_one_incident(
    activities: NotifyActivities, pagerduty: Receiver
) -> None:
    ref = ChannelRef(kind="pagerduty", id="oncall")
    before = len(pagerduty.received)
    for event in ("containment_failing", "containment_confirmed", "incident_closed"):
        receipt = await env(f"{event}:1").run(activities.send_notification, note(ref, event))
        assert receipt.status_code == 202
    assert pagerduty.invalid == []
    events = [r.body for r in pagerduty.received[before:]]
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {"inc-credit-7"}
    assert {e["routing_key"] for e in events} == {ROUTING_KEY}
    trigger = events[0]
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["links"][0]["href"] == f"{CONSOLE}/console/incidents/inc-credit-7"
    assert trigger["payload"]["custom_details"]["idempotency_key"]
    assert all(r.headers["idempotency-key"] for r in pagerduty.received[before:])


async def test_an_undeclared_channel_or_one_of_another_kind_is_refused(
    activities: NotifyActivities,
) -> None:
    for ref in (ChannelRef(kind="slack", id="nowhere"), ChannelRef(kind="email", id="oncall")):
        with pytest.raises(ApplicationError) as refused:
            await env().run(activities.send_notification, note(ref))
        assert refused.value.type == "NotificationChannelUndeclared"
        assert refused.value.non_retryable and str(ref) in str(refused.value)


async def test_secrets_never_reach_logs_errors_or_receipts(
    activities: NotifyActivities,
) -> None:
    """The SMTP password, the Slack webhook URL and the routing key stay where declared."""
    dead = NotifyActivities(
        None,
        channels=ChannelResolver(
            {
                "room": SlackChannel(
                    kind="slack",
                    webhook_url=SecretStr(f"http://127.0.0.1:{free_port()}{SLACK_PATH}"),
                    timeout_s=2,
                )
            }
        ),
    )
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(ApplicationError) as failed:
            await env().run(dead.send_notification, note(ChannelRef(kind="slack", id="room")))
        receipts = [
            await env(f"s:{i}").run(activities.send_notification, note(ChannelRef(kind=k, id=c)))
            for i, (k, c) in enumerate(
                [("email", "legal-team"), ("slack", "incident-room"), ("pagerduty", "oncall")]
            )
        ]
    assert failed.value.type == "NotificationUnreachable" and not failed.value.non_retryable
    seen = repr(logs) + str(failed.value) + repr(receipts)
    for secret in (SMTP_PASSWORD, "sl4ck-w3bh00k-secret", ROUTING_KEY):
        assert secret not in seen
    assert len([entry for entry in logs if entry["event"] == "notification"]) == 3


def test_operators_declare_channels_in_settings_and_ids_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    declared = {
        "oncall": {"kind": "pagerduty", "routing_key": ROUTING_KEY},
        "room": {"kind": "slack", "webhook_url": "https://hooks.slack.com/x"},
    }
    monkeypatch.setenv("FAIRLANE_NOTIFICATION_CHANNELS", json.dumps(declared))
    settings = Settings()
    resolver = settings.channel_resolver()
    assert resolver.refs == ["pagerduty:oncall", "slack:room"]
    pd = resolver.resolve(ChannelRef(kind="pagerduty", id="oncall"))
    assert isinstance(pd, PagerDutyChannel)
    assert pd.events_url == "https://events.pagerduty.com/v2/enqueue"
    assert ROUTING_KEY not in repr(settings)
    monkeypatch.setenv(
        "FAIRLANE_NOTIFICATION_CHANNELS", '{"Bad Id": {"kind": "slack", "webhook_url": "x"}}'
    )
    with pytest.raises(ValidationError, match="lower-case slug"):
        Settings()

"""Channels named in a playbook, end to end: an incident on the time-skipping server whose
notify step, sign-off request, reminders, escalation and close reach a real SMTP server and
the Slack and PagerDuty stand-ins (every payload checked against the services' schemas)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from audit.trail import AuditTrail
from config.channels import EmailChannel, PagerDutyChannel, SlackChannel
from contracts.incident import Phase
from playbooks.loader import PlaybookError, load_playbook_text
from tests.fixtures.incidents import (
    decide,
    incident_input,
    start_incident,
    state_of,
    wait_for_phase,
)
from tests.fixtures.receivers import Receiver, pagerduty_receiver, slack_receiver
from tests.fixtures.services import RouterService, running_worker
from tests.fixtures.smtp import Mailbox, smtp_server

CONSOLE = "https://console.example.org"
ROUTING_KEY = "0123456789abcdef0123456789ABCDEF"

PLAYBOOK = """
name: channels-test
version: "1"
escalate_to: [{kind: pagerduty, id: oncall}, {kind: slack, id: room}]
steps:
  - {name: contain, kind: route, serving: fallback}
  - name: tell
    kind: notify
    message: "{model} contained ({incident_id})"
    to: [{kind: slack, id: room}, {kind: email, id: responders}]
  - name: approve
    kind: signoff
    subject: keep it contained
    roles:
      - {role: legal, notify: [{kind: email, id: responders}]}
      - {role: compliance, notify: [{kind: slack, id: room}]}
    deadline: 72h
    reminder_every: 12h
    on_expiry: escalate
"""


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


@pytest.fixture
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailbox]:
    with smtp_server(tmp_path_factory.mktemp("smtp"), "fairlane", "smtp-pw") as box:
        yield box


@pytest.fixture
def slack() -> Iterator[Receiver]:
    with slack_receiver() as receiver:
        yield receiver


@pytest.fixture
def pagerduty() -> Iterator[Receiver]:
    with pagerduty_receiver() as receiver:
        yield receiver


def declared(box: Mailbox, slack: Receiver, pagerduty: Receiver) -> dict[str, Any]:
    return {
        "responders": EmailChannel(
            kind="email",
            host=box.host,
            port=box.port,
            ca_file=box.ca_file,
            username="fairlane",
            password=SecretStr("smtp-pw"),
            sender="fairlane@example.org",
            to=["legal@example.org"],
        ),
        "room": SlackChannel(kind="slack", webhook_url=SecretStr(slack.url + "/hook")),
        "oncall": PagerDutyChannel(
            kind="pagerduty", routing_key=SecretStr(ROUTING_KEY), events_url=pagerduty.url
        ),
    }


async def test_messages_reach_each_role_and_escalation_channel_and_pagerduty_follows_the_incident(
    time_env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    mailbox: Mailbox,
    slack: Receiver,
    pagerduty: Receiver,
) -> None:
    queue = f"channels-{uuid.uuid4().hex[:8]}"
    incident = incident_input(router_service, load_playbook_text(PLAYBOOK))
    channels = declared(mailbox, slack, pagerduty)
    async with running_worker(
        time_env.client,
        trail,
        router_service,
        queue,
        notification_channels=channels,
        console_url=CONSOLE,
    ):
        handle = await start_incident(time_env.client, incident, queue)
        await wait_for_phase(handle, Phase.AWAITING_SIGNOFF)
        await decide(handle, "lee.legal", "legal")  # legal is done: no more reminders for it
        await time_env.sleep(timedelta(hours=80))
        state = await state_of(handle)
        assert state.signoff is not None and state.signoff.escalated
        await decide(handle, "chen.compliance", "compliance")
        final = await handle.result()

    assert final.phase is Phase.RESOLVED
    assert slack.invalid == [] and pagerduty.invalid == []
    signoff_page = f"{CONSOLE}/console/incidents/{incident.incident_id}/signoff"

    # Email: the notify step and legal's sign-off request; legal decided before any reminder.
    subjects = [m["Subject"] for m in mailbox.messages]
    assert subjects == [
        "[sev1] channels-test: tell",
        "[sev1] Sign-off requested: keep it contained",
    ]
    assert signoff_page in mailbox.messages[1].get_content()
    assert len({m["Message-ID"] for m in mailbox.messages}) == 2

    # Slack: the step, compliance's request and its five reminders, the escalation, the close.
    headers = [r.body["blocks"][0]["text"]["text"] for r in slack.received]
    assert headers[0].endswith("channels-test: tell")
    assert sum("Sign-off requested" in h for h in headers) == 1
    assert sum("Reminder" in h for h in headers) >= 5
    assert sum("Sign-off overdue" in h for h in headers) == 1
    assert "Incident closed (resolved)" in headers[-1]
    keys = [r.headers["idempotency-key"] for r in slack.received]
    assert len(set(keys)) == len(keys)  # one key per message

    # PagerDuty: triggered by the overdue sign-off, resolved when the incident closed.
    actions = [(r.body["event_action"], r.body["dedup_key"]) for r in pagerduty.received]
    assert actions == [("trigger", incident.incident_id), ("resolve", incident.incident_id)]

    # Every send was its own activity, on the trail, without a credential in it.
    sends = [
        r
        for r in trail.records(incident.incident_id)
        if r.kind == "activity.completed" and "send_notification" in r.detail
    ]
    assert len(sends) == len(mailbox.messages) + len(slack.received) + len(pagerduty.received)
    everything = "".join(r.detail for r in trail.records(incident.incident_id))
    assert ROUTING_KEY not in everything and "smtp-pw" not in everything
    assert "/hook" not in everything


def test_a_channel_reference_must_be_typed_and_its_error_names_the_yaml_path() -> None:
    bad = PLAYBOOK.replace("{kind: pagerduty, id: oncall}", "{kind: pager, id: oncall}")
    with pytest.raises(PlaybookError) as error:
        load_playbook_text(bad)
    assert "escalate_to" in str(error.value)
    untyped = PLAYBOOK.replace("to: [{kind: slack, id: room},", "to: [room,")
    with pytest.raises(PlaybookError) as error:
        load_playbook_text(untyped)
    assert "steps[1]" in str(error.value) and "to" in str(error.value)

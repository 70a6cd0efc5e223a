"""Channels named in a playbook, end to end: an incident on the time-skipping server whose
notify step, sign-off request, reminders, escalation and close reach a real SMTP server and
the Slack and PagerDuty stand-ins (every payload checked against the services' schemas)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.tokens import Role, issue_token
from audit.trail import AuditTrail
from config import Settings
from config.channels import EmailChannel, PagerDutyChannel, SlackChannel
from contracts.incident import Phase
from playbooks.loader import PlaybookError, load_playbook_text
from stack.loopback import free_port
from tests.fixtures.incidents import (
    decide,
    incident_input,
    manifest_for,
    start_incident,
    state_of,
    wait_for_phase,
)
from tests.fixtures.receivers import Receiver, pagerduty_receiver, slack_receiver
from tests.fixtures.services import RouterService, running_worker, serve
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


def test_opening_an_incident_whose_playbook_names_an_undeclared_channel_is_422(
    router_service: RouterService, tmp_path: Path
) -> None:
    """Refused before anything starts, each channel named by its YAML path."""
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "channels-test.yaml").write_text(PLAYBOOK)
    settings = Settings(
        data_dir=tmp_path,
        artifacts_dir=router_service.files.artifacts_dir,
        playbooks_dir=playbooks,
        temporal_address=f"127.0.0.1:{free_port()}",  # nothing may reach Temporal
        outside_end_check_s=0,
        notification_channels={
            "room": SlackChannel(kind="slack", webhook_url=SecretStr("https://hooks.example/x"))
        },
    )
    token = issue_token(settings.resolved_tokens_file, "ic", [Role.INCIDENT_COMMANDER])
    app = create_app(settings)
    with serve(app, free_port()) as url:
        app.state.registry.register(manifest_for(router_service), "test")
        answer = httpx.post(
            f"{url}/v1/incidents",
            json={"model": router_service.model, "playbook": "channels-test", "summary": "gap"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "escalate_to[0]: channel pagerduty:oncall is not declared" in detail
    assert "steps[1].to[1]: channel email:responders is not declared" in detail
    assert "steps[2].roles[0].notify[0]: channel email:responders" in detail
    assert "slack:room" not in detail.split("(declared")[0]  # the declared one is fine

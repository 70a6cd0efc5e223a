"""The canary's messages go through the channels the playbook declares, on the
time-skipping server, to the local Slack and PagerDuty stand-ins (every payload checked
against the services' schemas): a rollback reaches each declared channel exactly once
(PagerDuty is paged), and without `to:` it is an escalation to `escalate_to`; the
promotion, a pause and a resume reach the step's channels but never page."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from audit.trail import AuditTrail
from config.channels import PagerDutyChannel, SlackChannel
from contracts.incident import Phase
from metrics.simulated import Regression
from playbooks.loader import PlaybookError, load_playbook_text
from tests.fixtures.receivers import Receiver, pagerduty_receiver, slack_receiver
from tests.fixtures.services import RouterService, time_skipping_server
from tests.test_canary_workflow import Incident, canary_playbook, simulated
from tests.test_canary_workflow import _fresh_route as _fresh_route  # fixtures
from tests.test_canary_workflow import candidate_artifact as candidate_artifact

ROUTING_KEY = "C4NARYR0UT1NGKEY0123456789abcdef"
SLACK_PATH = "/services/T0/B0/canary-room"
ROOM = "{kind: slack, id: room}"
ONCALL = "{kind: pagerduty, id: oncall}"


@pytest_asyncio.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A server per test, as in test_canary_workflow: a promotion abandons a timer."""
    async with time_skipping_server() as environment:
        yield environment


@pytest.fixture
def slack() -> Iterator[Receiver]:
    with slack_receiver() as receiver:
        yield receiver


@pytest.fixture
def pagerduty() -> Iterator[Receiver]:
    with pagerduty_receiver() as receiver:
        yield receiver


def channels(slack: Receiver, pagerduty: Receiver) -> dict[str, Any]:
    return {
        "notification_channels": {
            "room": SlackChannel(kind="slack", webhook_url=SecretStr(slack.url + SLACK_PATH)),
            "oncall": PagerDutyChannel(
                kind="pagerduty",
                routing_key=SecretStr(ROUTING_KEY),
                events_url=pagerduty.url + "/v2/enqueue",
            ),
        }
    }


def escalating_to(playbook: str, refs: str) -> str:
    return playbook.replace('version: "1"\n', f'version: "1"\nescalate_to: [{refs}]\n', 1)


def headers(slack: Receiver) -> list[str]:
    return [r.body["blocks"][0]["text"]["text"] for r in slack.received]


def sends(incident: Incident) -> list[dict[str, Any]]:
    records = incident.trail.records(incident.input.incident_id)
    details = [json.loads(r.detail) for r in records if r.kind == "activity.completed"]
    return [d for d in details if d["activity_type"] == "send_notification"]


async def breach_in_second_step(env: WorkflowEnvironment) -> Any:
    regression_at = await env.get_current_time() + timedelta(days=8)
    return await simulated(
        env, regressions=[Regression(starts_at=regression_at, group="B", amount_factor=0.8)]
    )


async def test_a_rollback_reaches_each_channel_of_the_step_exactly_once(
    env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    candidate_artifact: tuple[str, str],
    slack: Receiver,
    pagerduty: Receiver,
) -> None:
    playbook = canary_playbook(to=f"[{ROOM}, {ONCALL}]")
    incident = Incident(env, router_service, trail, candidate_artifact, playbook)
    final = await incident.run(await breach_in_second_step(env), **channels(slack, pagerduty))

    assert final.phase is Phase.FAILED and final.canary and final.canary.state == "rolled_back"
    assert slack.invalid == [] and pagerduty.invalid == []
    # Slack: the rollback, once (nothing was paused or promoted).
    assert headers(slack) == [f"[sev1] Canary rolled_back: {router_service.model}"]
    assert "breached at 5%" in slack.received[0].body["blocks"][1]["text"]["text"]
    # PagerDuty: paged once, on this incident.
    events = [r.body for r in pagerduty.received]
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [
        ("trigger", incident.input.incident_id)
    ]
    assert events[0]["payload"]["class"] == "canary_rolled_back"
    # One activity per channel, each with its own stable key, none to the legacy webhook.
    delivered = [r.headers["idempotency-key"] for r in slack.received + pagerduty.received]
    assert len(set(delivered)) == 2 and len(sends(incident)) == 2
    assert all(key.startswith(f"fairlane:{incident.input.incident_id}:") for key in delivered)


async def test_a_rollback_without_channels_is_an_escalation_that_pages(
    env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    candidate_artifact: tuple[str, str],
    slack: Receiver,
    pagerduty: Receiver,
) -> None:
    playbook = escalating_to(canary_playbook(), ONCALL)
    incident = Incident(env, router_service, trail, candidate_artifact, playbook)
    final = await incident.run(await breach_in_second_step(env), **channels(slack, pagerduty))

    assert final.phase is Phase.FAILED
    assert pagerduty.invalid == [] and slack.received == []
    events = [r.body for r in pagerduty.received]
    assert [(e["event_action"], e["payload"]["class"]) for e in events] == [
        ("trigger", "canary_rolled_back")
    ]
    assert "Canary rolled_back" in events[0]["payload"]["summary"]
    assert len(sends(incident)) == 1


async def test_pause_resume_and_promotion_reach_the_steps_channels_but_never_page(
    env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    candidate_artifact: tuple[str, str],
    slack: Receiver,
    pagerduty: Receiver,
) -> None:
    playbook = canary_playbook(ramp="[50, 100]", bake="2d", to=f"[{ROOM}, {ONCALL}]")
    incident = Incident(env, router_service, trail, candidate_artifact, playbook)
    async with incident.worker(await simulated(env), **channels(slack, pagerduty)):
        handle = await incident.start()
        await incident.ramp_step_running(0)
        await incident.control("pause")
        await env.sleep(timedelta(days=1))
        await incident.control("resume")
        final = await handle.result()

    assert final.phase is Phase.RESOLVED
    model = router_service.model
    assert headers(slack) == [
        f"[sev1] Canary paused: {model}",
        f"[sev1] Canary resumed: {model}",
        f"[sev1] Canary promoted: {model}",
    ]
    paused = slack.received[0].body["blocks"][1]["text"]["text"]
    assert "paused the canary" in paused and "at 50% (ramp step 1 of 2)" in paused
    assert "pause for the test" in paused
    assert pagerduty.received == [] and slack.invalid == []


def test_a_canary_channel_must_be_declared_and_typed_with_its_yaml_path() -> None:
    untyped = canary_playbook(to="[room]")
    with pytest.raises(PlaybookError) as error:
        load_playbook_text(untyped)
    assert "steps[1]" in str(error.value) and "to" in str(error.value)
    declared = load_playbook_text(canary_playbook(to=f"[{ROOM}, {ONCALL}]"))
    assert [(path, str(ref)) for path, ref in declared.channel_refs()] == [
        ("steps[1].to[0]", "slack:room"),
        ("steps[1].to[1]", "pagerduty:oncall"),
    ]

"""The notify activity against a real webhook receiver over loopback HTTP."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request, Response
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import IDEMPOTENCY_HEADER, NotifyActivities, idempotency_key
from contracts.steps import Notification
from tests.fixtures.services import free_port, serve

NOTE = Notification(
    incident_id="inc-1", channel="incident", severity="sev1", subject="s", message="contained"
)


@pytest.fixture(scope="module")
def headers_seen() -> list[str]:
    return []


@pytest.fixture(scope="module")
def receiver(headers_seen: list[str]) -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []
    app = FastAPI()

    @app.post("/hook/{status}")
    async def hook(status: int, request: Request) -> Response:
        received.append(await request.json())
        headers_seen.append(request.headers.get(IDEMPOTENCY_HEADER, ""))
        return Response(status_code=status)

    with serve(app, free_port()) as url:
        yield url, received


async def test_delivers_the_notification_to_the_webhook(
    receiver: tuple[str, list[dict[str, object]]],
) -> None:
    url, received = receiver
    receipt = await ActivityEnvironment().run(
        NotifyActivities(f"{url}/hook/204").send_notification, NOTE
    )
    assert receipt.delivered_to == "webhook" and receipt.status_code == 204
    assert received[-1] == {
        **NOTE.model_dump(),
        "idempotency_key": receipt.idempotency_key,
        "link": "http://127.0.0.1:8200/console/incidents/inc-1",  # every message links in
    }


async def test_a_refusal_is_not_retried_and_a_server_error_is(
    receiver: tuple[str, list[dict[str, object]]],
) -> None:
    url, _ = receiver
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(NotifyActivities(f"{url}/hook/400").send_notification, NOTE)
    assert refused.value.type == "NotificationRejected" and refused.value.non_retryable
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(NotifyActivities(f"{url}/hook/503").send_notification, NOTE)
    assert failed.value.type == "NotificationFailed503" and not failed.value.non_retryable


async def test_without_a_webhook_the_log_sink_receives_it() -> None:
    receipt = await ActivityEnvironment().run(NotifyActivities(None).send_notification, NOTE)
    assert receipt.delivered_to == "log"


async def test_every_attempt_carries_the_same_idempotency_key(
    receiver: tuple[str, list[dict[str, object]]],
) -> None:
    """A worker killed after the receiver got the message runs the activity again: the
    copy carries the key of the first, as header and in the body, so it can be dropped."""
    url, received = receiver
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id="inc-7", activity_id="notify:3")
    activities = NotifyActivities(f"{url}/hook/204")
    first = await env.run(activities.send_notification, NOTE)
    env.info = dataclasses.replace(env.info, attempt=2)
    again = await env.run(activities.send_notification, NOTE)
    assert first.idempotency_key and first.idempotency_key == again.idempotency_key
    assert received[-1]["idempotency_key"] == received[-2]["idempotency_key"]
    assert received[-1]["idempotency_key"] == first.idempotency_key
    assert "inc-7" in first.idempotency_key and "notify:3" in first.idempotency_key


async def test_different_messages_or_steps_get_different_keys() -> None:
    assert idempotency_key("inc-7", "notify:3", NOTE) != idempotency_key("inc-7", "notify:4", NOTE)
    assert idempotency_key("inc-7", "notify:3", NOTE) != idempotency_key("inc-8", "notify:3", NOTE)
    other = NOTE.model_copy(update={"message": "contained again"})
    assert idempotency_key("inc-7", "notify:3", NOTE) != idempotency_key("inc-7", "notify:3", other)


async def test_the_key_travels_as_a_header(
    receiver: tuple[str, list[dict[str, object]]], headers_seen: list[str]
) -> None:
    url, _ = receiver
    receipt = await ActivityEnvironment().run(
        NotifyActivities(f"{url}/hook/204").send_notification, NOTE
    )
    assert headers_seen[-1] == receipt.idempotency_key


async def test_an_unreachable_webhook_is_a_typed_retryable_failure() -> None:
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(
            NotifyActivities(f"http://127.0.0.1:{free_port()}/hook", timeout_s=2).send_notification,
            NOTE,
        )
    assert failed.value.type == "NotificationUnreachable" and not failed.value.non_retryable
    assert "unreachable" in str(failed.value)

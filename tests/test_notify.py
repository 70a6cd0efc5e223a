"""The notify activity against a real webhook receiver over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from contracts.steps import Notification
from tests.fixtures.services import free_port, serve

NOTE = Notification(
    incident_id="inc-1", channel="incident", severity="sev1", subject="s", message="contained"
)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []
    app = FastAPI()

    @app.post("/hook/{status}")
    async def hook(status: int, request: Request) -> Response:
        received.append(await request.json())
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
    assert received[-1] == NOTE.model_dump()


async def test_a_refusal_is_not_retried_and_a_server_error_is(
    receiver: tuple[str, list[dict[str, object]]],
) -> None:
    url, _ = receiver
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(NotifyActivities(f"{url}/hook/400").send_notification, NOTE)
    assert refused.value.type == "NotificationRejected" and refused.value.non_retryable
    with pytest.raises(httpx.HTTPStatusError):
        await ActivityEnvironment().run(NotifyActivities(f"{url}/hook/503").send_notification, NOTE)


async def test_without_a_webhook_the_log_sink_receives_it() -> None:
    receipt = await ActivityEnvironment().run(NotifyActivities(None).send_notification, NOTE)
    assert receipt.delivered_to == "log"

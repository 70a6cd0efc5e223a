"""The `notify` step's side effect: a webhook when one is configured, a log sink otherwise."""

from __future__ import annotations

import httpx
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.steps import SEND_NOTIFICATION, Notification, NotificationReceipt

log = structlog.get_logger("fairlane.notify")


class NotifyActivities:
    def __init__(self, webhook_url: str | None, timeout_s: float = 10.0) -> None:
        self._webhook_url = webhook_url
        self._timeout_s = timeout_s

    @activity.defn(name=SEND_NOTIFICATION)
    async def send_notification(self, notification: Notification) -> NotificationReceipt:
        if self._webhook_url is None:
            log.info("notification", sink="log", **notification.model_dump())
            return NotificationReceipt(delivered_to="log")
        async with httpx.AsyncClient(timeout=self._timeout_s) as client:
            response = await client.post(self._webhook_url, json=notification.model_dump())
        if 400 <= response.status_code < 500 and response.status_code != 429:
            # The receiver refuses this payload; sending it again will not change its mind.
            raise ApplicationError(
                f"notification webhook refused the message: HTTP {response.status_code}",
                type="NotificationRejected",
                non_retryable=True,
            )
        response.raise_for_status()  # 5xx and 429: retried by Temporal
        log.info(
            "notification",
            sink="webhook",
            channel=notification.channel,
            status=response.status_code,
        )
        return NotificationReceipt(delivered_to="webhook", status_code=response.status_code)

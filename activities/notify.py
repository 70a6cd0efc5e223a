"""The `notify` step's side effect: a webhook when one is configured, a log sink otherwise.

Temporal may run a notification more than once: a worker killed after the receiver
got the message, or a reply lost on the way back, means the activity runs again.
Every message therefore carries an idempotency key, the same on every attempt, so a
receiver can drop the copy: as the ``Idempotency-Key`` header and in the body.
"""

from __future__ import annotations

import hashlib

import httpx
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.steps import SEND_NOTIFICATION, Notification, NotificationReceipt

log = structlog.get_logger("fairlane.notify")
IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(workflow_id: str, activity_id: str, notification: Notification) -> str:
    """Stable for one message of one step of one incident, whatever the attempt.

    The activity id names the step and the message's place in the run (``step:n``),
    and is the same on every retry and after any worker restart; the digest of the
    content makes a key never name two different messages.
    """
    content = "\n".join(
        (notification.incident_id, notification.channel, notification.subject, notification.message)
    )
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"fairlane:{workflow_id}:{activity_id}:{digest}"


class NotifyActivities:
    def __init__(self, webhook_url: str | None, timeout_s: float = 5.0) -> None:
        self._webhook_url = webhook_url
        self._timeout_s = timeout_s

    @activity.defn(name=SEND_NOTIFICATION)
    async def send_notification(self, notification: Notification) -> NotificationReceipt:
        info = activity.info()
        key = idempotency_key(info.workflow_id or "", info.activity_id, notification)
        message = {**notification.model_dump(), "idempotency_key": key}
        if self._webhook_url is None:
            log.info("notification", sink="log", attempt=info.attempt, **message)
            return NotificationReceipt(delivered_to="log", idempotency_key=key)
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s) as client:
                response = await client.post(
                    self._webhook_url, json=message, headers={IDEMPOTENCY_HEADER: key}
                )
        except httpx.HTTPError as error:  # retried by Temporal
            raise ApplicationError(
                f"notification webhook unreachable: {type(error).__name__}: {error}",
                type="NotificationUnreachable",
            ) from error
        if 400 <= response.status_code < 500 and response.status_code != 429:
            # The receiver refuses this payload; sending it again will not change its mind.
            raise ApplicationError(
                f"notification webhook refused the message: HTTP {response.status_code}",
                type="NotificationRejected",
                non_retryable=True,
            )
        if response.is_error:  # 5xx and 429: retried by Temporal, with a readable reason
            raise ApplicationError(
                f"notification webhook failed: HTTP {response.status_code}",
                type=f"NotificationFailed{response.status_code}",
            )
        log.info(
            "notification",
            sink="webhook",
            channel=notification.channel,
            status=response.status_code,
            idempotency_key=key,
            attempt=info.attempt,
        )
        return NotificationReceipt(
            delivered_to="webhook", status_code=response.status_code, idempotency_key=key
        )

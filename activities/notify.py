"""The `notify` step's side effect: to a declared channel, or the webhook, or a log sink.

Temporal may run a notification more than once: a worker killed after the receiver
got the message, or a reply lost on the way back, means the activity runs again.
Every message therefore carries an idempotency key, the same on every attempt, so a
receiver can drop the copy: as the ``Idempotency-Key`` header and in the body (an
email's Message-ID is derived from it; PagerDuty dedups on the incident id). Every
message links into the console.

A message to a channel (``Notification.to``) goes only to the address the operator
declared for it, with the credential declared with it (config/channels.py); one with
no channel goes to the legacy webhook, or the log.
"""

from __future__ import annotations

import hashlib

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.delivery import IDEMPOTENCY_HEADER, post_json, send_email
from config.channels import (
    ChannelResolver,
    DeclaredChannel,
    EmailChannel,
    PagerDutyChannel,
    UndeclaredChannel,
)
from contracts.steps import SEND_NOTIFICATION, Notification, NotificationReceipt
from notifications.email import email_for
from notifications.messages import OutgoingMessage, console_link
from notifications.pagerduty import pagerduty_event
from notifications.slack import slack_payload

__all__ = ["IDEMPOTENCY_HEADER", "NotifyActivities", "idempotency_key"]

log = structlog.get_logger("fairlane.notify")
DEFAULT_CONSOLE_URL = "http://127.0.0.1:8200"


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
    def __init__(
        self,
        webhook_url: str | None,
        timeout_s: float = 5.0,
        channels: ChannelResolver | None = None,
        console_url: str = DEFAULT_CONSOLE_URL,
    ) -> None:
        self._webhook_url = webhook_url
        self._timeout_s = timeout_s
        self._channels = channels or ChannelResolver({})
        self._console_url = console_url.rstrip("/")

    @activity.defn(name=SEND_NOTIFICATION)
    async def send_notification(self, notification: Notification) -> NotificationReceipt:
        info = activity.info()
        key = idempotency_key(info.workflow_id or "", info.activity_id, notification)
        message = OutgoingMessage(
            notification=notification,
            idempotency_key=key,
            link=console_link(self._console_url, notification),
        )
        if notification.to is None:
            return await self._legacy(message, info.attempt)
        try:
            channel = self._channels.resolve(notification.to)
        except UndeclaredChannel as error:
            raise ApplicationError(
                str(error), type="NotificationChannelUndeclared", non_retryable=True
            ) from None
        name = str(notification.to)
        status = await self._deliver(name, channel, message)
        log.info(
            "notification",
            sink=name,
            about=notification.event,
            status=status,
            idempotency_key=key,
            attempt=info.attempt,
        )
        return NotificationReceipt(delivered_to=name, status_code=status, idempotency_key=key)

    async def _deliver(
        self, name: str, channel: DeclaredChannel, message: OutgoingMessage
    ) -> int | None:
        """Send to a declared channel; the HTTP status (None for SMTP, which has none)."""
        if isinstance(channel, EmailChannel):
            await send_email(name, channel, email_for(message, channel.sender, channel.to))
            return None
        if isinstance(channel, PagerDutyChannel):
            event = pagerduty_event(message, channel.key())
            url = channel.events_url
            what = f"PagerDuty channel {name}"
            body = event
        else:
            url = channel.url()
            what = f"Slack channel {name}"
            body = slack_payload(message)
        response = await post_json(what, url, body, message.idempotency_key, channel.timeout_s)
        return response.status_code

    async def _legacy(self, message: OutgoingMessage, attempt: int) -> NotificationReceipt:
        notification, key = message.notification, message.idempotency_key
        body = {
            **notification.model_dump(mode="json"),
            "idempotency_key": key,
            "link": message.link,
        }
        if self._webhook_url is None:
            fields = {k: v for k, v in body.items() if k != "event"}  # structlog's own key
            log.info(
                "notification", sink="log", attempt=attempt, about=notification.event, **fields
            )
            return NotificationReceipt(delivered_to="log", idempotency_key=key)
        response = await post_json(
            "notification webhook", self._webhook_url, body, key, self._timeout_s
        )
        log.info(
            "notification",
            sink="webhook",
            channel=notification.channel,
            status=response.status_code,
            idempotency_key=key,
            attempt=attempt,
        )
        return NotificationReceipt(
            delivered_to="webhook", status_code=response.status_code, idempotency_key=key
        )

"""The I/O under a notification: an HTTP post or an SMTP session, with typed failures.

Failures are ``ApplicationError``s Temporal understands: a receiver's refusal (4xx but
429, a bad SMTP login, refused recipients) is non-retryable, since sending it again will
not change its mind; anything else (unreachable, 5xx, 429, a dropped SMTP session) is
retried. Messages name the channel, never its address: a Slack webhook URL *is* its
credential, so no error text that could carry a URL (httpx's) is ever repeated.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from config.channels import EmailChannel

IDEMPOTENCY_HEADER = "Idempotency-Key"


async def post_json(
    what: str, url: str, body: dict[str, Any], key: str, timeout_s: float
) -> httpx.Response:
    """POST ``body``; raise a typed ApplicationError for anything but a 2xx/3xx answer."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.post(url, json=body, headers={IDEMPOTENCY_HEADER: key})
    except httpx.HTTPError as error:  # retried by Temporal
        raise ApplicationError(
            f"{what} unreachable: {type(error).__name__}", type="NotificationUnreachable"
        ) from None
    if 400 <= response.status_code < 500 and response.status_code != 429:
        raise ApplicationError(
            f"{what} refused the message: HTTP {response.status_code}",
            type="NotificationRejected",
            non_retryable=True,
        )
    if response.is_error:  # 5xx and 429: retried by Temporal, with a readable reason
        raise ApplicationError(
            f"{what} failed: HTTP {response.status_code}",
            type=f"NotificationFailed{response.status_code}",
        )
    return response


def _tls_context(channel: EmailChannel) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=channel.ca_file)


def _smtp_send(channel: EmailChannel, email: EmailMessage) -> None:
    with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout_s) as smtp:
        smtp.ehlo()
        if channel.starttls:
            if not smtp.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError("the server does not offer STARTTLS")
            smtp.starttls(context=_tls_context(channel))
            smtp.ehlo()
        if channel.username is not None:
            password = channel.password.get_secret_value() if channel.password else ""
            smtp.login(channel.username, password)
        smtp.send_message(email)


async def send_email(channel_name: str, channel: EmailChannel, email: EmailMessage) -> None:
    """One SMTP session (STARTTLS, AUTH), in a thread so the worker's loop keeps turning."""
    what = f"email channel {channel_name}"
    try:
        await asyncio.to_thread(_smtp_send, channel, email)
    except smtplib.SMTPAuthenticationError as error:
        raise ApplicationError(
            f"{what}: the SMTP server refused the login (SMTP {error.smtp_code})",
            type="NotificationRejected",
            non_retryable=True,
        ) from None
    except smtplib.SMTPNotSupportedError as error:
        raise ApplicationError(
            f"{what}: {error}; refusing to send credentials or mail in clear",
            type="NotificationRejected",
            non_retryable=True,
        ) from None
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as error:
        raise ApplicationError(
            f"{what}: the SMTP server refused the {type(error).__name__[4:-7].lower()}",
            type="NotificationRejected",
            non_retryable=True,
        ) from None
    except ssl.SSLError as error:
        raise ApplicationError(
            f"{what}: TLS with the SMTP server failed ({error.reason})",
            type="NotificationRejected",
            non_retryable=True,
        ) from None
    except (OSError, smtplib.SMTPException) as error:  # retried by Temporal
        raise ApplicationError(
            f"{what} unreachable: {type(error).__name__}", type="NotificationUnreachable"
        ) from None

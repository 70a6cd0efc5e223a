"""An email for one message: the idempotency key becomes its Message-ID.

A mail system drops a second message with a Message-ID it has already seen (and a
reader's client threads them), so the Message-ID is derived from the key, the same on
every attempt; the key itself travels as the ``Idempotency-Key`` header too.
"""

from __future__ import annotations

from email.message import EmailMessage

from notifications.messages import OutgoingMessage

MESSAGE_ID_DOMAIN = "fairlane.invalid"


def message_id(message: OutgoingMessage) -> str:
    return f"<{message.key_digest}@{MESSAGE_ID_DOMAIN}>"


def email_for(message: OutgoingMessage, sender: str, recipients: list[str]) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = ", ".join(recipients)
    email["Subject"] = message.subject
    email["Message-ID"] = message_id(message)
    email["Idempotency-Key"] = message.idempotency_key
    email["X-Fairlane-Incident"] = message.notification.incident_id
    email.set_content(message.text)
    return email

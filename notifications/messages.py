"""One outgoing message, whatever the channel: its text, its console link, its key.

Every channel renders the same :class:`OutgoingMessage`, so an email, a Slack post and
a PagerDuty event about one step carry the same idempotency key (a re-sent copy after
a crash can be dropped by its receiver) and link to the same console page.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from contracts.channels import SIGNOFF_EVENTS
from contracts.steps import Notification


def console_link(console_url: str, notification: Notification) -> str:
    """The console page a reader acts on: the sign-off page for sign-off messages."""
    page = f"{console_url.rstrip('/')}/console/incidents/{notification.incident_id}"
    return f"{page}/signoff" if notification.event in SIGNOFF_EVENTS else page


@dataclass(frozen=True)
class OutgoingMessage:
    notification: Notification
    idempotency_key: str
    link: str

    @property
    def asks_for_signoff(self) -> bool:
        return self.notification.event in SIGNOFF_EVENTS

    @property
    def subject(self) -> str:
        n = self.notification
        return f"[{n.severity}] {n.subject}"

    @property
    def text(self) -> str:
        """The plain-text body: the message, where to act, and the key."""
        action = "Approve or reject in the console" if self.asks_for_signoff else "Open"
        return (
            f"{self.notification.message}\n\n"
            f"{action}: {self.link}\n"
            f"Incident: {self.notification.incident_id}\n"
            f"Idempotency key: {self.idempotency_key}\n"
        )

    @property
    def key_digest(self) -> str:
        """A short, header-safe token derived from the key (e.g. an email's Message-ID)."""
        return hashlib.sha256(self.idempotency_key.encode()).hexdigest()[:40]

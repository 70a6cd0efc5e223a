"""Where a message goes (a channel an operator declared) and what it is about.

A playbook names a channel by kind and id, never by address: the address and the
credential (SMTP password, Slack webhook URL, PagerDuty routing key) live only in
the operator's declaration (``config/channels.py``), so whoever writes a playbook
cannot make a credential travel to a place they chose.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CHANNEL_ID = r"^[a-z][a-z0-9_-]{0,62}$"
ChannelKind = Literal["email", "slack", "pagerduty"]

NotificationEvent = Literal[
    "message",
    "signoff_requested",
    "signoff_reminder",
    "signoff_overdue",
    "escalated",
    "containment_failing",
    "containment_confirmed",
    "incident_closed",
    "canary_rolled_back",
    "canary_promoted",
    "canary_paused",
    "canary_resumed",
]
"""What a message is about. Channels use it: PagerDuty triggers on an escalation, a
containment failure or a canary rolled back, acknowledges when containment is confirmed,
resolves when the incident closes; sign-off messages link to the console's sign-off page.
The canary's promotion, pause and resume are news, not pages: they go to the step's
channels other than PagerDuty (:data:`NOT_PAGES`)."""

NOT_PAGES: frozenset[str] = frozenset({"canary_promoted", "canary_paused", "canary_resumed"})

SIGNOFF_EVENTS: frozenset[str] = frozenset(
    {"signoff_requested", "signoff_reminder", "signoff_overdue"}
)


class ChannelRef(BaseModel):
    """A typed reference to a declared channel, e.g. ``{kind: email, id: legal-team}``.

    The kind is part of the reference so a playbook says what it expects; a worker
    whose channel of that id is of another kind refuses to send rather than guess."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ChannelKind
    id: str = Field(pattern=CHANNEL_ID, description="a channel id the operator declared")

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


def unique_refs(*groups: list[ChannelRef]) -> list[ChannelRef]:
    """The references of all ``groups``, each once, in first-seen order."""
    seen: dict[ChannelRef, None] = {}
    for group in groups:
        for ref in group:
            seen.setdefault(ref, None)
    return list(seen)

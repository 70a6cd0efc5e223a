"""Notification channels: where Fairlane may send a message, and with which credential.

Operators declare channels in :class:`config.Settings` (``FAIRLANE_NOTIFICATION_CHANNELS``,
JSON: channel id -> declaration); a playbook only names one by kind and id
(:class:`contracts.channels.ChannelRef`). As with routing targets, the reason is the
threat model: whoever writes a playbook must not be able to make the worker send an
SMTP password or a routing key to a place they chose, so a credential only travels
with the address it was declared with.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from contracts.channels import CHANNEL_ID, ChannelRef

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_CHANNEL_ID = re.compile(CHANNEL_ID)


class _Declared(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=10.0, gt=0, le=60)


class EmailChannel(_Declared):
    """An SMTP server (STARTTLS, then AUTH when a username is given) and the recipients."""

    kind: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = Field(
        default=True, description="upgrade with STARTTLS before AUTH; refuse a server without it"
    )
    ca_file: str | None = Field(
        default=None, description="CA bundle the server's certificate must chain to"
    )
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(min_length=3, description="the From address")
    to: list[str] = Field(min_length=1, description="recipient addresses")


class SlackChannel(_Declared):
    """A Slack incoming webhook; its URL is the credential (anyone holding it can post)."""

    kind: Literal["slack"]
    webhook_url: SecretStr


class PagerDutyChannel(_Declared):
    """A PagerDuty service's Events API v2 integration."""

    kind: Literal["pagerduty"]
    routing_key: SecretStr
    events_url: str = Field(default=PAGERDUTY_EVENTS_URL, pattern=r"^https?://")


DeclaredChannel = Annotated[
    EmailChannel | SlackChannel | PagerDutyChannel, Field(discriminator="kind")
]


class UndeclaredChannel(LookupError):
    """A playbook names a channel this worker does not have (or one of another kind)."""


def validate_channel_ids(channels: dict[str, DeclaredChannel]) -> dict[str, DeclaredChannel]:
    for channel_id in channels:
        if not _CHANNEL_ID.match(channel_id):
            raise ValueError(f"notification channel id {channel_id!r} must be a lower-case slug")
    return channels


class ChannelResolver:
    """The worker's declared channels: a playbook's reference → the declaration."""

    def __init__(self, channels: dict[str, DeclaredChannel]) -> None:
        self._channels = dict(channels)

    @property
    def refs(self) -> list[str]:
        return sorted(f"{c.kind}:{channel_id}" for channel_id, c in self._channels.items())

    def resolve(self, ref: ChannelRef) -> DeclaredChannel:
        """The declaration ``ref`` names; :class:`UndeclaredChannel` (never a credential)."""
        declared = self._find(ref)
        if declared is None:
            raise UndeclaredChannel(
                f"notification channel {ref} is not declared on this worker "
                f"(declared: {', '.join(self.refs) or 'none'}; operators declare channels "
                "in FAIRLANE_NOTIFICATION_CHANNELS)"
            )
        return declared

    def undeclared(self, named: list[tuple[str, ChannelRef]]) -> list[str]:
        """A problem for each ``(yaml path, reference)`` that names no declared channel."""
        return [
            f"{path}: channel {ref} is not declared (declared: {', '.join(self.refs) or 'none'})"
            for path, ref in named
            if self._find(ref) is None
        ]

    def _find(self, ref: ChannelRef) -> DeclaredChannel | None:
        declared = self._channels.get(ref.id)
        return declared if declared is not None and declared.kind == ref.kind else None

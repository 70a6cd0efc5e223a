"""Notification channels: where Fairlane may send a message, and with which credential.

Operators declare channels in :class:`config.Settings` (``FAIRLANE_NOTIFICATION_CHANNELS``,
JSON: channel id -> declaration); a playbook only names one by kind and id
(:class:`contracts.channels.ChannelRef`). As with routing targets, the reason is the
threat model: whoever writes a playbook must not be able to make the worker send an
SMTP password or a routing key to a place they chose, so a credential only travels
with the address it was declared with.

Every secret of a channel (the SMTP password, the Slack webhook URL, the PagerDuty
routing key) is given inline (from a secret store through the environment) or as
``<field>_file``, a file the operator mounted (Kubernetes, Docker secrets), never both.
A worker reads the files once, when it starts (:func:`load_channel_secrets`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from config.secret_files import SecretFileError, inline_or_file
from contracts.channels import CHANNEL_ID, ChannelRef

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_CHANNEL_ID = re.compile(CHANNEL_ID)


class _Declared(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret_fields: ClassVar[tuple[str, ...]] = ()
    """Fields holding a credential; each may be given as ``<field>_file`` instead."""
    required_secrets: ClassVar[tuple[str, ...]] = ()

    timeout_s: float = Field(default=10.0, gt=0, le=60)

    @model_validator(mode="after")
    def _required_secrets_given(self) -> Self:
        for field in self.required_secrets:
            if getattr(self, field) is None and getattr(self, f"{field}_file") is None:
                raise ValueError(f"give `{field}` or `{field}_file`")
        return self

    def check_secret_forms(self, channel_id: str) -> None:
        """Refuse a secret given both inline and as a file, or as a relative path, without
        opening anything (every process that reads the declaration checks this)."""
        what = f"notification channel {channel_id!r}"
        for field in self.secret_fields:
            path: Path | None = getattr(self, f"{field}_file")
            if getattr(self, field) is not None and path is not None:
                raise SecretFileError(f"{what}: give `{field}` or `{field}_file`, not both")
            if path is not None and not path.is_absolute():
                raise SecretFileError(
                    f"{what}: {field}_file {str(path)!r} must be an absolute path"
                )

    def with_secrets_read(self, channel_id: str) -> Self:
        """This declaration with each ``<field>_file`` read into ``<field>``.

        :class:`SecretFileError` names the channel and the field when a file is missing,
        unreadable or empty, or when a secret is given both inline and as a file."""
        what = f"notification channel {channel_id!r}"
        update: dict[str, object] = {}
        for field in self.secret_fields:
            path: Path | None = getattr(self, f"{field}_file")
            secret = inline_or_file(what, field, getattr(self, field), path)
            if path is not None:
                update |= {field: secret, f"{field}_file": None}
        return self.model_copy(update=update) if update else self


class EmailChannel(_Declared):
    """An SMTP server (STARTTLS, then AUTH when a username is given) and the recipients."""

    kind: Literal["email"]
    secret_fields = ("password",)
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
    password_file: Path | None = Field(default=None, description="a file holding the password")
    sender: str = Field(min_length=3, description="the From address")
    to: list[str] = Field(min_length=1, description="recipient addresses")


class SlackChannel(_Declared):
    """A Slack incoming webhook; its URL is the credential (anyone holding it can post)."""

    kind: Literal["slack"]
    secret_fields = required_secrets = ("webhook_url",)
    webhook_url: SecretStr | None = None
    webhook_url_file: Path | None = Field(
        default=None, description="a file holding the webhook URL"
    )

    def url(self) -> str:
        """The webhook URL (the credential): only for the request that posts to it."""
        if self.webhook_url is None:
            raise SecretFileError("the Slack webhook URL was not read from its file")
        return self.webhook_url.get_secret_value()


class PagerDutyChannel(_Declared):
    """A PagerDuty service's Events API v2 integration."""

    kind: Literal["pagerduty"]
    secret_fields = required_secrets = ("routing_key",)
    routing_key: SecretStr | None = None
    routing_key_file: Path | None = Field(
        default=None, description="a file holding the integration's routing key"
    )
    events_url: str = Field(default=PAGERDUTY_EVENTS_URL, pattern=r"^https?://")

    def key(self) -> str:
        """The routing key (the credential): only for the event that carries it."""
        if self.routing_key is None:
            raise SecretFileError("the PagerDuty routing key was not read from its file")
        return self.routing_key.get_secret_value()


DeclaredChannel = Annotated[
    EmailChannel | SlackChannel | PagerDutyChannel, Field(discriminator="kind")
]


class UndeclaredChannel(LookupError):
    """A playbook names a channel this worker does not have (or one of another kind)."""


def validate_channel_ids(channels: dict[str, DeclaredChannel]) -> dict[str, DeclaredChannel]:
    for channel_id, channel in channels.items():
        if not _CHANNEL_ID.match(channel_id):
            raise ValueError(f"notification channel id {channel_id!r} must be a lower-case slug")
        channel.check_secret_forms(channel_id)
    return channels


def load_channel_secrets(channels: dict[str, DeclaredChannel]) -> dict[str, DeclaredChannel]:
    """Every channel with its secret files read (a worker's start-up: a bad file stops it
    there, not at the first message hours later)."""
    return {
        channel_id: channel.with_secrets_read(channel_id)
        for channel_id, channel in channels.items()
    }


class ChannelResolver:
    """The worker's declared channels: a playbook's reference → the declaration.

    A worker, which sends, has the secret files read when it builds its resolver (its
    start-up); the API only checks that a playbook's references are declared, so it
    builds one with ``read_secrets=False`` and never needs the files mounted."""

    def __init__(self, channels: dict[str, DeclaredChannel], read_secrets: bool = True) -> None:
        self._channels = load_channel_secrets(channels) if read_secrets else dict(channels)

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

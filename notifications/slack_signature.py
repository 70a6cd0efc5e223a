"""Slack's request signatures: how Fairlane knows a callback really comes from Slack.

Slack signs every request it sends an app (a button click, say) with the app's signing
secret: ``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:" + timestamp + ":" +
raw body)>`` and ``X-Slack-Request-Timestamp: <unix seconds>``. A request whose
timestamp is more than the tolerance (5 minutes) from now is refused, so a captured
request cannot be replayed later; the comparison is constant-time, and neither the
secret nor the expected signature appears in an error.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
_VERSION = "v0"


class SlackSignatureError(ValueError):
    """Why a request is not Slack's: missing, stale or wrong; never the secret."""


def slack_signature(secret: SecretStr, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` Slack would send for ``body`` at ``timestamp``."""
    base = f"{_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.get_secret_value().encode(), base, hashlib.sha256).hexdigest()
    return f"{_VERSION}={digest}"


def verify_slack_request(
    secret: SecretStr,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now: float,
    tolerance_s: int,
) -> None:
    """Raise :class:`SlackSignatureError` unless Slack signed ``body`` within the window."""
    if not timestamp:
        raise SlackSignatureError(f"{TIMESTAMP_HEADER} is missing: the request is not Slack's")
    if not signature:
        raise SlackSignatureError(f"{SIGNATURE_HEADER} is missing: the request is not Slack's")
    try:
        sent = int(timestamp)
    except ValueError:
        raise SlackSignatureError(f"{TIMESTAMP_HEADER} must be unix seconds") from None
    skew = abs(now - sent)
    if skew > tolerance_s:
        raise SlackSignatureError(
            f"{TIMESTAMP_HEADER} is {skew:.0f}s from now, more than the {tolerance_s}s "
            "allowed: an old (possibly replayed) request is refused"
        )
    expected = slack_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SlackSignatureError(
            f"{SIGNATURE_HEADER} does not match the body signed with this app's signing "
            "secret: the request is not Slack's, or it was changed on the way"
        )

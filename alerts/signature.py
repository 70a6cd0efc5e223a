"""Optional HMAC signatures on alert bodies, with a timestamp so a captured one expires.

The bearer token says who sent an alert; a signature also proves that no proxy changed
the body on the way, and, because it covers the time of sending, that nobody is
replaying a body captured earlier. When ``settings.alert_hmac_secret`` is set, every
alert POST carries (the scheme Stripe and Slack use)::

    X-Fairlane-Timestamp: <unix seconds when signed>
    X-Fairlane-Signature: v1=<hex HMAC-SHA256(secret, "v1:" + timestamp + ":" + raw body)>

A timestamp more than ``alert_signature_tolerance_s`` (5 minutes) from the server's
clock, either way, is refused; within that window each signature is accepted once
(``alerts/replay.py``). Body-only signatures (``sha256=<hex HMAC of the body>``, the
old scheme, replayable forever) are refused unless ``alert_hmac_allow_legacy`` is set.

Alertmanager itself cannot sign bodies: it authenticates with the bearer token
(``http_config.authorization`` in its receiver), so turn signatures on only when
every alert sender is a generic monitor or a signing proxy in front of Alertmanager.

Comparisons are constant-time, and neither the secret nor the expected signature ever
appears in an error or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr

SIGNATURE_HEADER = "X-Fairlane-Signature"
TIMESTAMP_HEADER = "X-Fairlane-Timestamp"
_SCHEME = "v1="
_LEGACY_SCHEME = "sha256="


class SignatureError(ValueError):
    """The body's signature is missing, wrong or out of its time window; the message says
    which, never the secret."""


@dataclass(frozen=True)
class CheckedSignature:
    """A good timestamped signature, and when it stops being acceptable anyway.

    Until ``expires_at`` a replay of it would pass every other check, so it must be
    remembered at least that long.
    """

    signature: str
    expires_at: datetime


def sign(secret: SecretStr, body: bytes, timestamp: int) -> str:
    """The ``X-Fairlane-Signature`` value for ``body`` sent at ``timestamp``."""
    message = f"v1:{timestamp}:".encode() + body
    return _SCHEME + _hmac(secret, message)


def signed_headers(secret: SecretStr, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Both headers a sender puts on ``body``, signed now unless ``timestamp`` is given."""
    when = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(when), SIGNATURE_HEADER: sign(secret, body, when)}


def sign_legacy(secret: SecretStr, body: bytes) -> str:
    """The old body-only signature; accepted only with ``alert_hmac_allow_legacy``."""
    return _LEGACY_SCHEME + _hmac(secret, body)


def verify(
    secret: SecretStr,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    tolerance_s: int,
    allow_legacy: bool = False,
    now: float | None = None,
) -> CheckedSignature | None:
    """Raise :class:`SignatureError` unless the headers sign ``body`` with ``secret``
    within ``tolerance_s`` of ``now``. ``None`` for an accepted legacy signature, which
    has no time and so cannot be checked for replay."""
    given = (signature or "").strip()
    if not given:
        raise SignatureError(
            f"missing {SIGNATURE_HEADER} header (v1=<hex HMAC of 'v1:<timestamp>:<body>'>)"
        )
    if given.startswith(_LEGACY_SCHEME):
        _verify_legacy(secret, body, given, allow_legacy)
        return None
    if not given.startswith(_SCHEME):
        raise SignatureError(f"{SIGNATURE_HEADER} must be v1=<hex HMAC of 'v1:<timestamp>:<body>'>")
    sent_at = _timestamp(timestamp)
    if not hmac.compare_digest(given.lower().encode(), sign(secret, body, sent_at).encode()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the timestamp and body")
    age = (time.time() if now is None else now) - sent_at
    if age > tolerance_s:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {int(age)}s old, outside the {tolerance_s}s window: "
            "sign each delivery (and each retry) when sending it"
        )
    if -age > tolerance_s:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {int(-age)}s in the future, outside the {tolerance_s}s "
            "window: check the sender's clock"
        )
    return CheckedSignature(
        signature=given.lower(),
        expires_at=datetime.fromtimestamp(sent_at + tolerance_s, UTC),
    )


def _verify_legacy(secret: SecretStr, body: bytes, given: str, allowed: bool) -> None:
    if not allowed:
        raise SignatureError(
            f"{SIGNATURE_HEADER} sha256=… signs the body without a time and can be replayed: "
            f"sign 'v1:<timestamp>:<body>' and send {TIMESTAMP_HEADER}"
        )
    if not hmac.compare_digest(given.lower().encode(), sign_legacy(secret, body).encode()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")


def _timestamp(header: str | None) -> int:
    value = (header or "").strip()
    if not value:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header (unix seconds, signed)")
    if not value.isdigit() or len(value) > 12:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be whole unix seconds")
    return int(value)


def _hmac(secret: SecretStr, message: bytes) -> str:
    return hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).hexdigest()

"""Optional HMAC signatures on alert bodies: ``X-Fairlane-Signature: sha256=<hex>``.

The bearer token says who sent an alert; a signature over the raw body also proves
that no proxy or replaying middlebox changed it on the way. When
``settings.alert_hmac_secret`` is set, every alert POST must carry
``HMAC-SHA256(secret, raw body)`` in hex; without the setting nothing is checked.

Alertmanager itself cannot sign bodies: it authenticates with the bearer token
(``http_config.authorization`` in its receiver), so turn signatures on only when
every alert sender is a generic monitor or a signing proxy in front of Alertmanager.

The comparison is constant-time, and neither the secret nor the expected digest ever
appears in an error or a log line.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

SIGNATURE_HEADER = "X-Fairlane-Signature"
_SCHEME = "sha256="


class SignatureError(ValueError):
    """The body's signature is missing or wrong; the message says which, never the secret."""


def sign(secret: SecretStr, body: bytes) -> str:
    """The header value a sender puts on ``body``."""
    digest = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    return _SCHEME + digest


def verify(secret: SecretStr, body: bytes, header: str | None) -> None:
    """Raise :class:`SignatureError` unless ``header`` signs ``body`` with ``secret``."""
    given = (header or "").strip()
    if not given:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header (sha256=<hex HMAC of the body>)")
    if not given.startswith(_SCHEME):
        raise SignatureError(f"{SIGNATURE_HEADER} must be sha256=<hex HMAC of the body>")
    if not hmac.compare_digest(given.lower().encode(), sign(secret, body).encode()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")

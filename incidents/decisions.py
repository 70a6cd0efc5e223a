"""The keys of signed human decisions (see :mod:`contracts.decisions`).

The API holds the private key (:class:`DecisionSigner`): from settings, or generated
once into a 0600 file under the data directory, its public half exported beside it.
Workers and everything else read only the public key (:func:`decision_key`) and pin it
into each incident they open, so an incident checks decisions with the key it was
opened under even after a rotation.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.signing import (
    TrailKeyError,
    load_or_create_private_key,
    load_public_key,
    private_key_from_secret,
    write_public_key,
)
from config import Settings
from contracts.decisions import (
    DecisionKey,
    DecisionKind,
    DecisionProof,
    SignableDecision,
    decision_message,
    key_id_of,
)

log = structlog.get_logger(__name__)
D = TypeVar("D", bound=SignableDecision)


class DecisionKeyError(Exception):
    """The decision key cannot be loaded; the message names the setting or the file."""


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_from_public(public_key: Ed25519PublicKey, max_age_s: int) -> DecisionKey:
    raw = _raw(public_key)
    return DecisionKey(
        key_id=key_id_of(raw), public_key=base64.b64encode(raw).decode(), max_age_s=max_age_s
    )


def decision_key(settings: Settings) -> DecisionKey | None:
    """The public key to pin into incidents, from settings or the exported file; None
    (logged) when there is none yet: such an incident takes no human decision."""
    text = settings.decision_public_key
    if text is not None:
        text = text.strip()
        try:
            if text.startswith("-----BEGIN"):
                public = serialization.load_pem_public_key(text.encode())
            else:
                public = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
        except (ValueError, binascii.Error):
            raise DecisionKeyError(
                "FAIRLANE_DECISION_PUBLIC_KEY is neither an Ed25519 PEM public key nor "
                "base64 of its 32 raw bytes"
            ) from None
        if not isinstance(public, Ed25519PublicKey):
            raise DecisionKeyError("FAIRLANE_DECISION_PUBLIC_KEY is not an Ed25519 key")
        return key_from_public(public, settings.decision_max_age_s)
    path = settings.resolved_decision_public_key_file
    if not path.exists():
        log.warning(
            "no decision public key: incidents opened now take no human decision",
            path=str(path),
        )
        return None
    try:
        return key_from_public(load_public_key(path), settings.decision_max_age_s)
    except TrailKeyError as error:
        raise DecisionKeyError(str(error)) from None


class DecisionSigner:
    """The API's signing half: signs each human decision it forwards to an incident."""

    def __init__(self, private_key: Ed25519PrivateKey, max_age_s: int) -> None:
        self._private = private_key
        self.key = key_from_public(private_key.public_key(), max_age_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> DecisionSigner:
        """The key from settings or the key file (generated once, mode 0600); its public
        half is exported to the public key file for workers."""
        try:
            if settings.decision_signing_key is not None:
                private = private_key_from_secret(
                    settings.decision_signing_key, "FAIRLANE_DECISION_SIGNING_KEY"
                )
            else:
                private = load_or_create_private_key(
                    settings.resolved_decision_signing_key_file, "decision signing key"
                )
            write_public_key(
                settings.resolved_decision_public_key_file,
                private.public_key(),
                "the decision signing key",
            )
        except TrailKeyError as error:
            raise DecisionKeyError(str(error)) from None
        return cls(private, settings.decision_max_age_s)

    def sign(
        self,
        kind: DecisionKind,
        decision: D,
        incident_id: str,
        step: str | None,
        issued_at: datetime | None = None,
    ) -> D:
        """``decision`` with the proof that the API decided it, for this incident and step."""
        issued_at = issued_at or datetime.now(UTC)
        message = decision_message(kind, decision, incident_id, step, issued_at, self.key.key_id)
        proof = DecisionProof(
            incident_id=incident_id,
            step=step,
            issued_at=issued_at,
            key_id=self.key.key_id,
            signature=base64.b64encode(self._private.sign(message)).decode(),
        )
        signed: D = decision.model_copy(update={"proof": proof})  # type: ignore[attr-defined]
        return signed

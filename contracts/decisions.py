"""Human decisions signed by the API, and the check every incident makes before taking one.

A sign-off, a canary control or a containment stand-down reaches an incident as a
Temporal update. Anyone who can reach Temporal (the ``temporal`` CLI, the Web UI) can
send one with any principal and roles in it, so the payload's word proves nothing.
The API, after authenticating the caller and checking their roles, signs the decision
with an Ed25519 key only it holds; the incident was given the public half when it was
opened (``IncidentInput.decision_key``) and its update validators refuse a decision
that is unsigned, signed by another key, altered, signed for another incident or
another step, stale, or already delivered once.

The signed message is canonical JSON over everything that makes the decision what it
is: the kind, incident, step, principal, roles, the decision's own fields (role,
approve/reject, assessment digest, comment; or action and reason), the time it was
issued and the key id. Everything here is pure and deterministic, so the workflow's
validators call it directly (imported through the sandbox).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Container, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from contracts.incident import IncidentState

SIGNOFF = "signoff"
CANARY_CONTROL = "canary_control"
STAND_DOWN = "stand_down"
DecisionKind = str


class DecisionKey(BaseModel):
    """The public key an incident checks human decisions with, pinned at open time."""

    key_id: str = Field(description="ed25519:<first 16 hex of sha256 of the raw key>")
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    max_age_s: int = Field(
        default=300, ge=1, description="a decision issued longer ago than this is refused"
    )
    max_skew_s: int = Field(
        default=60, ge=0, description="how far in the future a decision's issued_at may be"
    )


class DecisionProof(BaseModel):
    """The API's signature over a decision, and what it was signed for."""

    incident_id: str
    step: str | None = None
    issued_at: datetime
    key_id: str
    signature: str = Field(description="base64 of the Ed25519 signature of the message")


class SignableDecision(Protocol):
    principal: str
    principal_roles: list[str]
    proof: DecisionProof | None

    def signed_fields(self) -> Mapping[str, str | None]: ...


def key_id_of(raw_public_key: bytes) -> str:
    return "ed25519:" + hashlib.sha256(raw_public_key).hexdigest()[:16]


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def decision_message(
    kind: DecisionKind,
    decision: SignableDecision,
    incident_id: str,
    step: str | None,
    issued_at: datetime,
    key_id: str,
) -> bytes:
    """The exact bytes the API signs and the incident verifies."""
    body: dict[str, object] = {
        "v": 1,
        "kind": kind,
        "incident_id": incident_id,
        "step": step,
        "principal": decision.principal,
        "roles": sorted(decision.principal_roles),
        "issued_at": _iso(issued_at),
        "key_id": key_id,
        "fields": dict(decision.signed_fields()),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def current_step(kind: DecisionKind, state: IncidentState) -> str | None:
    """The step a decision of ``kind`` is about, as the incident's state names it."""
    if kind == SIGNOFF:
        return state.signoff.step if state.signoff is not None else None
    if kind == CANARY_CONTROL:
        return state.canary.step if state.canary is not None else None
    return state.containment.step if state.containment is not None else None


def decision_refusal(
    kind: DecisionKind,
    decision: SignableDecision,
    key: DecisionKey | None,
    incident_id: str,
    step: str | None,
    now: datetime,
    delivered: Container[str] = (),
) -> str | None:
    """Why the incident must not take this decision on its signature, or None."""
    if key is None:
        return (
            "this incident was opened without a decision key, so it cannot tell a decision "
            "made through Fairlane's API from a forged one: it takes none"
        )
    proof = decision.proof
    if proof is None:
        return (
            "unsigned decision refused: human decisions reach an incident only through "
            "Fairlane's API, which signs them"
        )
    if proof.key_id != key.key_id:
        return f"decision signed with key {proof.key_id}; this incident trusts {key.key_id}"
    message = decision_message(
        kind, decision, proof.incident_id, proof.step, proof.issued_at, key.key_id
    )
    if not _verifies(key, message, proof.signature):
        return (
            "the decision's signature does not verify: it was not signed by Fairlane's API "
            "for this principal, these roles and this decision"
        )
    if proof.incident_id != incident_id:
        return f"the decision was signed for incident {proof.incident_id}, not {incident_id}"
    if proof.step != step:
        return f"the decision was signed for step {proof.step!r}; the step open now is {step!r}"
    issued = proof.issued_at if proof.issued_at.tzinfo else proof.issued_at.replace(tzinfo=UTC)
    age = now - issued
    if age > timedelta(seconds=key.max_age_s):
        return (
            f"stale decision: issued at {_iso(issued)}, more than {key.max_age_s}s "
            "before the incident received it; decide again"
        )
    if age < -timedelta(seconds=key.max_skew_s):
        return f"the decision claims to be issued at {_iso(issued)}, in the future"
    if proof.signature in delivered:
        return "this signed decision was already delivered once; a replay is refused"
    return None


def _verifies(key: DecisionKey, message: bytes, signature: str) -> bool:
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key, validate=True))
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True

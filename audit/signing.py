"""The trail's Ed25519 key: generated once into a 0600 file, or supplied through settings.

The hash chain alone proves nothing against someone who can write the database: they
can rewrite a record and recompute every hash after it. Checkpoints signed with a key
the database does not hold close that gap, so the key lives in a file (or a secret
from settings) and never in a table, a log line or an error message.

The file is created atomically (written under a temporary name, then hard-linked into
place, which fails if another process won the race), so workers starting together all
end up with the one key. Like ssh, a private key file readable by group or others is
refused rather than used.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import SecretStr

from store.files import create_private_once


class TrailKeyError(Exception):
    """A signing or public key cannot be loaded or written; the message names the file."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint auditors compare out of band: ``ed25519:<16 hex>``."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(private_key: Ed25519PrivateKey, message: bytes) -> str:
    """Base64 of the Ed25519 signature of ``message``."""
    return base64.b64encode(private_key.sign(message)).decode()


def signature_valid(public_key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A PEM public key file, as ``fairlane trail public-key`` writes it."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as error:
        raise TrailKeyError(f"cannot read public key {path}: {error.strerror}") from None
    except ValueError:
        raise TrailKeyError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TrailKeyError(f"{path} is not an Ed25519 public key")
    return key


def private_key_from_secret(
    secret: SecretStr, variable: str = "FAIRLANE_TRAIL_SIGNING_KEY"
) -> Ed25519PrivateKey:
    """A key supplied through settings: PEM (PKCS#8), or base64 of the 32-byte seed."""
    text = secret.get_secret_value().strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except ValueError:
        # never echo the value: it is the key
        raise TrailKeyError(
            f"{variable} is neither an Ed25519 PEM key nor base64 of a 32-byte seed"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TrailKeyError(f"{variable} is not an Ed25519 key")
    return key


def load_or_create_private_key(path: Path, what: str = "trail signing key") -> Ed25519PrivateKey:
    """The key in ``path``, generating it (mode 0600) the first time."""
    if not path.exists():
        _create(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise TrailKeyError(f"{what} {path} is readable by others (mode {mode:o}): chmod 600 it")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError:
        raise TrailKeyError(f"{path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TrailKeyError(f"{path} is not an Ed25519 private key")
    return key


def write_public_key(
    path: Path, public_key: Ed25519PublicKey, what: str = "the trail signing key"
) -> None:
    """Export the public key; an existing file naming another key is an error, not replaced.

    Replacing it silently would let whoever changed the signing key also change what
    checkpoints are checked against.
    """
    pem = public_pem(public_key)
    if path.exists():
        if path.read_bytes() != pem:
            raise TrailKeyError(
                f"{path} holds a different public key than {what}: "
                "move it aside if the key was rotated on purpose"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(pem)
    os.replace(partial, path)


def _create(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    create_private_once(path, pem)  # another process may have made it first: use theirs

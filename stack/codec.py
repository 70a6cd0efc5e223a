"""Payload encryption: what Fairlane puts in Temporal is AES-GCM ciphertext.

Sign-off comments, principal names, summaries and findings travel through Temporal as
workflow inputs, update arguments and results, and stay in its history (and in the
embedded server's ``temporal.db``) for as long as the history is kept. Every Fairlane
client (API, worker, CLI) encodes payloads with :class:`AesGcmCodec`, so the history
holds only ciphertext, each payload naming the key that sealed it.

Keys rotate: the codec encrypts with the current key and decrypts with any key it
knows, by the key id in the payload's metadata. A payload without Fairlane's encoding
(a history recorded before encryption, an argument sent with the plain ``temporal``
CLI) passes through as it is: refusing it is the job of the decision signatures, not
of the codec. An auditor's Web UI decodes through the API's codec endpoint
(``api/codec.py``), with an auditor's token.

Keys come from settings (``FAIRLANE_PAYLOAD_KEYS``, a JSON map of key id to base64 of
32 random bytes, and ``FAIRLANE_PAYLOAD_KEY_CURRENT``) or, for the embedded stack, from
a key file in the data directory (mode 0600), created once, atomically, by whichever
process needs it first.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from config import Settings
from store.files import private_dir

ENCODING = b"binary/fairlane-aes256gcm"
KEY_ID = "fairlane-key-id"
_NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    """The payload keys are unusable, or a payload names a key this process does not have."""


@dataclasses.dataclass(frozen=True)
class PayloadKeys:
    current: str
    keys: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise PayloadKeyError(f"the current payload key {self.current!r} is not among the keys")
        for kid, key in self.keys.items():
            if len(key) != 32:
                raise PayloadKeyError(f"payload key {kid!r} must be 32 bytes (AES-256)")


class AesGcmCodec(PayloadCodec):
    def __init__(self, keys: PayloadKeys) -> None:
        self._keys = keys
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        kid = self._keys.current
        cipher = self._ciphers[kid]
        sealed = []
        for payload in payloads:
            nonce = secrets.token_bytes(_NONCE_BYTES)
            data = nonce + cipher.encrypt(nonce, payload.SerializeToString(), kid.encode())
            sealed.append(Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=data))
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        opened = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                opened.append(payload)  # not sealed by Fairlane: as it is
                continue
            kid = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._ciphers.get(kid)
            if cipher is None:
                raise PayloadKeyError(f"payload sealed with key {kid!r}, which is not configured")
            nonce, sealed = payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:]
            opened.append(Payload.FromString(cipher.decrypt(nonce, sealed, kid.encode())))
        return opened


def payload_keys(settings: Settings) -> PayloadKeys | None:
    """The keys settings name, else the data directory's key file (created if missing);
    None when encryption is switched off."""
    if not settings.payload_encryption:
        return None
    if settings.payload_keys:
        keys = {
            kid: _decode_key(kid, s.get_secret_value()) for kid, s in settings.payload_keys.items()
        }
        current = settings.payload_key_current or sorted(keys)[-1]
        return PayloadKeys(current=current, keys=keys)
    return _key_file(settings.resolved_payload_key_file)


def data_converter(settings: Settings) -> DataConverter:
    """Fairlane's converter: pydantic models, sealed with the payload keys when they are on."""
    keys = payload_keys(settings)
    if keys is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=AesGcmCodec(keys))


def new_key_file_content() -> dict[str, object]:
    kid = f"k{secrets.token_hex(4)}"
    return {"current": kid, "keys": {kid: base64.b64encode(secrets.token_bytes(32)).decode()}}


def _key_file(path: Path) -> PayloadKeys:
    if not path.exists():
        private_dir(path.parent)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(new_key_file_content(), out)
        try:
            os.link(temp, path)  # atomic: the first process to get here wins
        except FileExistsError:
            pass  # another process made the key file first: theirs is the one every process uses
        finally:
            temp.unlink()
    try:
        content = json.loads(path.read_text())
        keys = {kid: _decode_key(kid, value) for kid, value in content["keys"].items()}
        return PayloadKeys(current=content["current"], keys=keys)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PayloadKeyError(f"the payload key file {path} is unusable: {error}") from error


def _decode_key(kid: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as error:
        raise PayloadKeyError(f"payload key {kid!r} is not base64") from error

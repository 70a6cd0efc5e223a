"""The trail as settings describe it: its engine, its signing key and checkpoint log.

Every process that appends (worker, API) opens the trail here, so they all sign with
the same key into the same log; the first to start generates the key file.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from audit.checkpoints import Checkpointer, CheckpointLog, CheckpointPolicy, TrailSigning
from audit.signing import (
    load_or_create_private_key,
    private_key_from_secret,
    write_public_key,
)
from audit.trail import AuditTrail
from config import Settings

CHECKPOINT_FILE = "checkpoints.jsonl"


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The private key from settings, or from (generated into) the key file; its public
    half is exported to the public key file as a side effect."""
    if settings.trail_signing_key is not None:
        key = private_key_from_secret(settings.trail_signing_key)
    else:
        key = load_or_create_private_key(settings.resolved_trail_signing_key_file)
    write_public_key(settings.resolved_trail_public_key_file, key.public_key())
    return key


def checkpoint_log(settings: Settings) -> CheckpointLog:
    return CheckpointLog(settings.resolved_trail_checkpoint_dir / CHECKPOINT_FILE)


def trail_signing(settings: Settings) -> TrailSigning:
    key = signing_key(settings)
    policy = CheckpointPolicy(
        every_records=settings.trail_checkpoint_every_records,
        every_seconds=settings.trail_checkpoint_every_seconds,
    )
    log = checkpoint_log(settings)
    return TrailSigning(log, key.public_key(), Checkpointer(key, log, policy))


def open_trail(engine: Engine, settings: Settings) -> AuditTrail:
    """The signed trail every Fairlane process uses."""
    return AuditTrail(engine, trail_signing(settings))

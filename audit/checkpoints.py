"""Signed checkpoints of the chain head, and the append-only file that keeps them.

A checkpoint says "record ``seq`` of the trail had hash ``head``", signed with the
trail's Ed25519 key. Because every record's hash folds in the one before it, that one
signature fixes every record up to ``seq``: cutting the tail below it, rewriting any
earlier record (even recomputing every later hash and the head row) or deleting one
and renumbering all leave the database disagreeing with a signature nobody can forge
without the key. Records after the newest checkpoint are covered only by the chain.

Checkpoints go to a JSON-lines file opened ``O_APPEND`` and fsynced, one line each,
outside the database: a database writer cannot rewrite them. Several processes may
append to it; each line is one ``write`` and stands on its own, so their order in the
file does not matter.

**When a checkpoint is signed** (:class:`CheckpointPolicy`), after the append commits:
when the batch holds a record whose kind is in ``kinds`` (every incident phase change
and every sign-off), when the head crosses a multiple of ``every_records``, or when
this process has not signed for ``every_seconds`` (checked on its next append: a quiet
trail is not signed on a timer, ``fairlane trail checkpoint`` does that on demand).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from audit.chain import canonical_json
from audit.signing import key_id, sign, signature_valid
from contracts.audit import TrailCheckpoint

log = structlog.get_logger(__name__)

CHECKPOINT_KINDS = frozenset({"phase.changed", "signoff.decided"})
"""Audit kinds that are signed as soon as they are appended: the moments that matter."""

_MESSAGE_PREFIX = b"fairlane-trail-checkpoint:v1\n"


def checkpoint_message(seq: int, head: str, count: int, at: datetime, key: str) -> bytes:
    """The exact bytes a checkpoint's signature covers (domain-separated canonical JSON)."""
    fields = {"seq": seq, "head": head, "count": count, "at": at, "key_id": key}
    return _MESSAGE_PREFIX + canonical_json(fields).encode()


def sign_checkpoint(private_key: Ed25519PrivateKey, seq: int, head: str) -> TrailCheckpoint:
    at = datetime.now(UTC)
    key = key_id(private_key.public_key())
    signature = sign(private_key, checkpoint_message(seq, head, seq, at, key))
    return TrailCheckpoint(seq=seq, head=head, count=seq, at=at, key_id=key, signature=signature)


def checkpoint_signed(checkpoint: TrailCheckpoint, public_key: Ed25519PublicKey) -> bool:
    """Whether ``checkpoint`` was signed by ``public_key``'s private half, unaltered."""
    if checkpoint.key_id != key_id(public_key):
        return False
    message = checkpoint_message(
        checkpoint.seq, checkpoint.head, checkpoint.count, checkpoint.at, checkpoint.key_id
    )
    return signature_valid(public_key, message, checkpoint.signature)


@dataclass(frozen=True)
class CheckpointLog:
    """The append-only JSON-lines file of checkpoints."""

    path: Path

    def append(self, checkpoint: TrailCheckpoint) -> None:
        line = (checkpoint.model_dump_json() + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write per line: concurrent appenders never interleave
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> tuple[list[TrailCheckpoint], list[int]]:
        """Every checkpoint in the file, and the numbers of lines that do not parse."""
        try:
            text = self.path.read_text()
        except (FileNotFoundError, NotADirectoryError):
            return [], []  # no log at all: verify reports that nothing is signed
        checkpoints: list[TrailCheckpoint] = []
        unreadable: list[int] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                checkpoints.append(TrailCheckpoint.model_validate_json(line))
            except ValidationError:
                unreadable.append(number)
        return checkpoints, unreadable


@dataclass(frozen=True)
class CheckpointPolicy:
    every_records: int = 1000
    every_seconds: float = 60.0
    kinds: Collection[str] = CHECKPOINT_KINDS


@dataclass
class Checkpointer:
    """Decides when the head is due a checkpoint, signs it and appends it to the log.

    One per process; the time trigger is per process (a new process signs on its first
    append), the record trigger is global (crossing a multiple of ``every_records``).
    A checkpoint that cannot be written is logged loudly and retried on the next
    append; it never fails the append, because containment must not wait on a disk.
    """

    private_key: Ed25519PrivateKey
    log: CheckpointLog
    policy: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    clock: Callable[[], float] = time.monotonic
    _last_signed: float | None = None
    _pending: bool = False

    def due(self, previous_seq: int, head_seq: int, kinds: Collection[str]) -> bool:
        if head_seq <= 0:
            return False
        every = self.policy.every_records
        return (
            self._pending
            or any(kind in self.policy.kinds for kind in kinds)
            or (every > 0 and head_seq // every > previous_seq // every)
            or self._last_signed is None
            or self.clock() - self._last_signed >= self.policy.every_seconds
        )

    def checkpoint(self, seq: int, head: str) -> TrailCheckpoint | None:
        """Sign and log ``(seq, head)``; ``None`` (and retried later) if it cannot be logged."""
        checkpoint = sign_checkpoint(self.private_key, seq, head)
        try:
            self.log.append(checkpoint)
        except OSError as error:
            self._pending = True
            log.error(
                "trail checkpoint not written; retried on the next append",
                path=str(self.log.path),
                seq=seq,
                error=error.strerror,
            )
            return None
        self._pending = False
        self._last_signed = self.clock()
        return checkpoint


@dataclass
class TrailSigning:
    """What a trail needs to sign and check checkpoints.

    ``checkpointer`` is ``None`` in a process that only verifies (it holds the public
    key, never the private one).
    """

    log: CheckpointLog
    public_key: Ed25519PublicKey
    checkpointer: Checkpointer | None = None

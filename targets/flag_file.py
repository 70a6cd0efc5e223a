"""A flagd flag file as a routing target: the model's route is one flag in the file.

Every write is a compare-and-set plus an atomic replace:

- the flag must still be what Fairlane read (its digest, ``expected_revision``) and
  the update's generation newer than the flag's; the very same update again (a retry
  after a lost answer) is recognised and changes nothing;
- the new file is written beside the old one, flushed to disk, and moved over it
  (``os.replace``), so a reader (flagd, an in-process provider) sees the old file or
  the new one, never half of one. Just before the move the file is read again: if
  anyone changed it meanwhile, the write starts over on what is there now. Fairlane's
  own writers on one host also take an advisory lock (``.<name>.lock`` beside it).

Every other flag, and every other key of the file, is kept as it was. A file that is
not valid JSON is refused, naming the file and the position, and nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from config.targets import ResolvedFlagFile
from contracts.routing import Route, RouteSpec, RouteUpdate
from contracts.steps import TargetRoute
from targets.flagd_flag import (
    FLAGD_SCHEMA,
    FlagShapeError,
    flag_digest,
    flag_key,
    parse,
    render,
    spec_problems,
)
from targets.protocol import StaleRoute, TargetError

ABSENT = "absent"
"""The whole-file digest of a file that does not exist (yet)."""
_WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class _Snapshot:
    """The file as read once: its bytes' digest and its parsed document."""

    digest: str
    document: dict[str, Any]

    @property
    def flags(self) -> dict[str, Any]:
        flags: dict[str, Any] = self.document["flags"]
        return flags


class _ChangedWhileWriting(Exception):
    """The file changed between our read and our replace: start the write over."""


class FlagFile:
    """The JSON file itself: read whole, replaced whole."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> _Snapshot:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return _Snapshot(ABSENT, {"$schema": FLAGD_SCHEMA, "flags": {}})
        except OSError as error:
            raise TargetError(
                f"flag file {self.path} cannot be read: {error.strerror}",
                "FlagFileUnavailable",
                retryable=True,
            ) from None
        return _Snapshot(hashlib.sha256(raw).hexdigest(), self._document(raw))

    def _document(self, raw: bytes) -> dict[str, Any]:
        try:
            document = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise self._invalid(f"is not UTF-8 text (byte {error.start})") from None
        except json.JSONDecodeError as error:
            raise self._invalid(
                f"is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
            ) from None
        if not isinstance(document, dict):
            raise self._invalid("is not a JSON object")
        flags = document.get("flags")
        if not isinstance(flags, dict):
            raise self._invalid("has no 'flags' object")
        return document

    def _invalid(self, what: str) -> TargetError:
        return TargetError(
            f"flag file {self.path} {what}; nothing was written", "FlagFileInvalid", retryable=False
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Fairlane's writers on this host, one at a time (advisory; others are caught
        by the re-read before the replace)."""
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def replace(self, document: dict[str, Any], read_digest: str) -> None:
        """Write ``document`` atomically, unless the file is no longer at ``read_digest``."""
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        mode = self.path.stat().st_mode & 0o777 if self.path.exists() else 0o644
        fd, temp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, mode)
            if self._digest_now() != read_digest:
                raise _ChangedWhileWriting
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _digest_now(self) -> str:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except FileNotFoundError:
            return ABSENT


class FlagFileTarget:
    """``async with FlagFileTarget(resolved) as flags: await flags.read_route(model)``."""

    def __init__(self, resolved: ResolvedFlagFile) -> None:
        self._id = resolved.id
        self.file = FlagFile(resolved.path)

    @property
    def target_id(self) -> str:
        return self._id

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def read_route(self, model: str) -> TargetRoute:
        return await asyncio.to_thread(self._read, model)

    async def set_route(
        self, model: str, update: RouteUpdate, expected_revision: str | None = None
    ) -> TargetRoute:
        return await asyncio.to_thread(self._set, model, update, expected_revision)

    # ---- the work, off the event loop --------------------------------------------------

    def _read(self, model: str) -> TargetRoute:
        snapshot = self.file.read()
        definition = snapshot.flags.get(flag_key(model))
        if definition is None:
            raise TargetError(
                f"flag file {self.file.path} has no flag {flag_key(model)!r}: the route of "
                f"{model!r} was never written to target {self._id!r}",
                "RouteNotFound",
                retryable=False,
            )
        return self._route(model, definition)

    def _route(self, model: str, definition: Any) -> TargetRoute:
        try:
            route = parse(model, definition)
        except FlagShapeError as error:
            raise TargetError(
                f"flag {flag_key(model)!r} in {self.file.path} is not a Fairlane route: {error}",
                "FlagMalformed",
                retryable=False,
            ) from None
        return TargetRoute(**route.model_dump(), revision=flag_digest(definition))

    def _set(self, model: str, update: RouteUpdate, expected_revision: str | None) -> TargetRoute:
        spec = RouteSpec.model_validate(update.model_dump(include=set(RouteSpec.model_fields)))
        problems = spec_problems(spec)
        if problems:
            raise TargetError(
                f"route for model {model!r} cannot be written as a flag: " + "; ".join(problems),
                "RouteInvalid",
                retryable=False,
            )
        try:
            with self.file.locked():
                for _ in range(_WRITE_ATTEMPTS):
                    try:
                        return self._compare_and_set(model, spec, update, expected_revision)
                    except _ChangedWhileWriting:
                        continue
        except OSError as error:
            raise TargetError(
                f"flag file {self.file.path} cannot be written: {error.strerror}",
                "FlagFileUnavailable",
                retryable=True,
            ) from None
        raise TargetError(
            f"flag file {self.file.path} kept changing while Fairlane wrote it; nothing was "
            "written, the write will be tried again",
            "FlagFileBusy",
            retryable=True,
        )

    def _compare_and_set(
        self, model: str, spec: RouteSpec, update: RouteUpdate, expected_revision: str | None
    ) -> TargetRoute:
        snapshot = self.file.read()
        key = flag_key(model)
        definition = snapshot.flags.get(key)
        current = None if definition is None else self._route(model, definition)
        if (
            current is not None
            and current.generation == update.generation
            and current.spec().same_routing(spec)
        ):
            return current  # a retry of the write that made it: nothing to do
        if expected_revision is not None and (
            current is None or current.revision != expected_revision
        ):
            now = "gone" if current is None else f"now {current.revision}"
            raise StaleRoute(
                f"flag {key!r} in {self.file.path} changed since Fairlane read it "
                f"(read at {expected_revision}, {now}); nothing was written",
                current,
            )
        if current is not None and update.generation <= current.generation:
            raise StaleRoute(
                f"generation {update.generation} is not newer than flag {key!r}'s "
                f"generation {current.generation}; nothing was written",
                current,
            )
        route = Route(
            model=model,
            **spec.model_dump(),
            generation=update.generation,
            updated_by=update.updated_by,
            reason=update.reason,
            updated_at=datetime.now(UTC),
        )
        written = render(route)
        document = {**snapshot.document, "flags": {**snapshot.flags, key: written}}
        self.file.replace(document, snapshot.digest)
        return TargetRoute(**route.model_dump(), revision=flag_digest(written))

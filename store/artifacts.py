"""The one way Fairlane opens (and writes) a model artifact.

A model file is code if it is a pickle: unpickling runs whatever its author put in it.
So an artifact is opened only

- **by name, from the artifacts directory** (``FAIRLANE_ARTIFACTS_DIR``, by default
  ``<data_dir>/artifacts``): the name is a relative name of slugs, resolved with symlinks
  followed and checked to stay inside the directory (:func:`store.paths.under`); a manifest
  or a callback can name a file, never a place;
- **when its bytes still have the sha256 the registry recorded** when an authorised
  principal registered it: a file swapped under a version name afterwards is refused;
- **in a format that does not execute code when it loads**: skops (``.skops``), with
  only skops' own vetted types plus the few listed in :data:`EXTRA_TRUSTED_TYPES` (the
  parts of the scikit-learn models Fairlane serves that skops does not vet by default).
  A file that needs any other type is refused, naming the types. joblib/pickle files are
  opened only where ``FAIRLANE_ALLOW_PICKLE_ARTIFACTS=true`` says the operator accepts
  that whoever can write the artifacts directory can run code in the worker and router.

Every loader (the audits, remediation, validation, the reference router) goes through
:meth:`ArtifactStore.load`; remediation writes its candidates through :meth:`save`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skops.io as sio

from store.paths import PathEscape, under

SKOPS_SUFFIX = ".skops"
SKOPS_LOCK = threading.RLock()
"""One skops (de)serialisation at a time per process. skops builds its object tree through
``ast``, and CPython 3.11's AST constructor is not safe across threads (gh-106905): two
registrations checking their artifacts at once failed with "SystemError: AST constructor
recursion depth mismatch". Re-entrant: a load checks the file's types inside it."""

EXTRA_TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # The fitted trees of HistGradientBoosting{Classifier,Regressor}: arrays only.
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        # VotingClassifier keeps its members in a Bunch (a dict with attribute access).
        "sklearn.utils._bunch.Bunch",
        # numpy functions the served pipelines call: target transforms, region coding.
        "numpy.digitize",
        "numpy.log",
        "numpy.log1p",
        "numpy.exp",
        "numpy.expm1",
    }
)
"""Types Fairlane's served models need beyond skops' own trusted list (scikit-learn's
estimators, numpy and scipy containers). Adding one means: it cannot run code on load."""


class ArtifactError(ValueError):
    """An artifact that will not be opened: ``field`` names the manifest field at fault
    (``artifact`` for its name, place or format; ``sha256`` for its digest)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _is_pickle(content: bytes) -> bool:
    """Pickle protocol 2+ starts with PROTO (0x80); joblib files may be zlib-compressed."""
    return content[:1] == b"\x80" or content[:2] in (b"x\x9c", b"x\x01", b"x\xda")


@dataclass(frozen=True)
class ArtifactStore:
    """The artifacts directory and whether pickles may be opened there."""

    root: Path
    allow_pickle: bool = False

    def path(self, name: str) -> Path:
        """Where ``name`` lives: inside the root, or :class:`ArtifactError` on ``artifact``."""
        try:
            return under(self.root, name)
        except PathEscape as error:
            raise ArtifactError("artifact", f"artifact {name!r}: {error}") from error

    def digest(self, name: str) -> str:
        """The sha256 of the named file, after checking its name, place and format."""
        path = self.path(name)
        if not path.is_file():
            raise ArtifactError("artifact", f"artifact {name!r} does not exist in {self.root}")
        content = path.read_bytes()
        self._check_format(name, content)
        return hashlib.sha256(content).hexdigest()

    def read_pinned(self, name: str, sha256: str | None) -> bytes:
        """The raw bytes of a data file (fallback rules, not a model) under ``name``, once they
        match ``sha256``; ``sha256=None`` returns them for the caller to pin."""
        path = self.path(name)
        if not path.is_file():
            raise ArtifactError("rules", f"file {name!r} does not exist in {self.root}")
        content = path.read_bytes()
        actual = hashlib.sha256(content).hexdigest()
        if sha256 is not None and actual != sha256:
            raise ArtifactError(
                "sha256",
                f"file {name!r} was changed after registration: its sha256 is {actual[:12]}…, "
                f"the registry recorded {sha256[:12]}…; refused",
            )
        return content

    def load(self, name: str, sha256: str | None) -> Any:
        """The object stored under ``name``, once its bytes match ``sha256``.

        The bytes are read once, hashed and deserialised from memory, so the file cannot
        be swapped between the check and the load. ``sha256=None`` is refused: a version
        registered before digests were recorded must be registered again.
        """
        if sha256 is None:
            raise ArtifactError(
                "sha256",
                f"artifact {name!r} has no recorded sha256; register the model again so the "
                "registry records it",
            )
        path = self.path(name)
        if not path.is_file():
            raise ArtifactError("artifact", f"artifact {name!r} does not exist in {self.root}")
        content = path.read_bytes()
        actual = hashlib.sha256(content).hexdigest()
        if actual != sha256:
            raise ArtifactError(
                "sha256",
                f"artifact {name!r} was changed after registration: its sha256 is "
                f"{actual[:12]}…, the registry recorded {sha256[:12]}…; refused",
            )
        kind = self._check_format(name, content)
        if kind == "pickle":  # only where the operator opted in: imported only then
            import io
            import pickle

            import joblib

            try:
                return joblib.load(io.BytesIO(content))
            except (pickle.UnpicklingError, ValueError, EOFError) as error:
                raise ArtifactError(
                    "artifact", f"artifact {name!r} is unreadable: {error}"
                ) from error
        with SKOPS_LOCK:
            return sio.loads(content, trusted=sorted(self._untrusted(name, content)))

    def save(self, obj: Any, *parts: str) -> tuple[str, str]:
        """Write ``obj`` as skops at ``parts`` under the root (atomically); its name and sha256."""
        name = "/".join(parts)
        if not name.endswith(SKOPS_SUFFIX):
            raise ArtifactError("artifact", f"new artifacts are written as skops: {name!r}")
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with SKOPS_LOCK:
            content = sio.dumps(obj)
            untrusted = set(sio.get_untrusted_types(data=content)) - EXTRA_TRUSTED_TYPES
        if untrusted:
            raise ArtifactError(
                "artifact",
                f"cannot write {name!r}: it holds types Fairlane will not load back "
                f"({', '.join(sorted(untrusted))})",
            )
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(content)
        os.replace(partial, path)
        return name, hashlib.sha256(content).hexdigest()

    def _check_format(self, name: str, content: bytes) -> str:
        if _is_pickle(content):
            if not self.allow_pickle:
                raise ArtifactError(
                    "artifact",
                    f"artifact {name!r} is a pickle (joblib), which runs code when it loads; "
                    "write it with skops (skops.io.dump), or set "
                    "FAIRLANE_ALLOW_PICKLE_ARTIFACTS=true to accept that risk",
                )
            return "pickle"
        self._untrusted(name, content)
        return "skops"

    def _untrusted(self, name: str, content: bytes) -> set[str]:
        """The non-default types the file needs, all of them in EXTRA_TRUSTED_TYPES."""
        try:
            with SKOPS_LOCK:
                needed = set(sio.get_untrusted_types(data=content))
        except (zipfile.BadZipFile, KeyError, ValueError) as error:
            raise ArtifactError(
                "artifact", f"artifact {name!r} is not a skops file ({type(error).__name__})"
            ) from error
        refused = needed - EXTRA_TRUSTED_TYPES
        if refused:
            raise ArtifactError(
                "artifact",
                f"artifact {name!r} needs types Fairlane does not trust: "
                f"{', '.join(sorted(refused))}",
            )
        return needed


def local_store(path: Path, *, allow_pickle: bool = False) -> tuple[ArtifactStore, str]:
    """A file a user names on their own command line: its folder as the store, its name.

    For the ``fairlane audit`` commands and notebooks, where the person naming the file
    is the one who runs the code; services never call this with a name from a caller.
    """
    resolved = path.expanduser().resolve()
    return ArtifactStore(resolved.parent, allow_pickle), resolved.name

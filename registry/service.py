"""Register, read and list model manifests (sqlmodel; SQLite or Postgres).

Re-registering a model replaces its manifest and bumps its revision; incidents
already running keep the manifest they were opened with (it is workflow input).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from contracts.fallback_rules import RulesError, parse_rules
from contracts.model import FallbackRules, ModelManifest, ModelVersion, artifact_name
from registry.fit import check_fit, check_version, require_features
from registry.limits import ManifestRejected, storable_json
from store.artifacts import ArtifactError, ArtifactStore


class RegisteredModel(SQLModel, table=True):
    __tablename__ = "registered_model"

    id: str = Field(primary_key=True)
    manifest_json: str
    revision: int
    registered_by: str
    registered_at: datetime


class ManifestError(ValueError):
    """A manifest file that cannot be read or does not validate, with the field paths."""


class UnreadableManifest(ManifestError):
    """A stored manifest that no longer validates (written before today's checks, or
    altered in the database): named, so one bad row cannot take the registry down."""

    def __init__(self, model_id: str, reason: str) -> None:
        self.model_id = model_id
        super().__init__(f"the stored manifest of {model_id!r} cannot be read: {reason}")


class RevisionConflict(Exception):
    """The model changed between reading it and writing it."""

    def __init__(self, model_id: str, expected: int, current: int) -> None:
        super().__init__(
            f"{model_id!r} is at revision {current}, not {expected}: it changed meanwhile; "
            "read it again and resend"
        )


def load_manifest_file(path: Path) -> ModelManifest:
    try:
        data = yaml.safe_load(path.read_text())
        return ModelManifest.model_validate(data)
    except OSError as error:
        raise ManifestError(f"{path}: cannot read: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not valid YAML: {error}") from error
    except ValidationError as error:
        raise ManifestError(f"{path}: {_problems(error)}") from error


def _problems(error: ValidationError) -> str:
    """Each validation problem as ``field.path: message``, without echoing the input."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'manifest'}: {e['msg']}"
        for e in error.errors(include_url=False, include_input=False)
    )


Readable = list[ModelManifest]
Unreadable = list[UnreadableManifest]
Manifests = tuple[Readable, Unreadable]


class ModelRegistry:
    """Manifests in the database; with an artifact store, each version's file pinned by digest.

    Registration is where an authorised principal vouches for a file: the registry
    checks that each version's artifact is a name inside the artifacts directory, in a
    format that loads without running code, and records its sha256 (or checks the one
    given). Loaders then open exactly those bytes or nothing (``store/artifacts.py``).
    Each artifact is then opened through the one loader and must fit the manifest: its
    features declared, its outcomes the declared ones (``registry/fit.py``). Without a
    store (tests that never open a model) versions are stored as given.
    """

    def __init__(self, engine: Engine, artifacts: ArtifactStore | None = None) -> None:
        self._engine = engine
        self._artifacts = artifacts

    def register(
        self, manifest: ModelManifest, registered_by: str, expected_revision: int | None = None
    ) -> int:
        """Store the manifest; returns its revision (1 for a new model).

        With ``expected_revision`` (0: not registered yet), the write happens only if the
        model is still at that revision, else :class:`RevisionConflict`: whoever decided
        who may write (first registration vs. change) decided it on what is still there.

        Raises :class:`~registry.limits.ManifestRejected` for a manifest that could not be
        read back or sent to Temporal once stored (too deep, too large, unencodable text),
        or whose artifact is missing, outside the artifacts directory, a refused format,
        or not the file its given ``sha256`` names (``loc`` names the version's field).
        """
        manifest = self.pinned(manifest)
        manifest_json = storable_json(manifest)
        with Session(self._engine) as session:
            # Locked on Postgres until commit, so the revision checked is the one replaced.
            row = session.get(RegisteredModel, manifest.id, with_for_update=True)
            current = 0 if row is None else row.revision
            if expected_revision is not None and current != expected_revision:
                raise RevisionConflict(manifest.id, expected_revision, current)
            revision = current + 1
            row = row or RegisteredModel(
                id=manifest.id, manifest_json="", revision=0, registered_by="", registered_at=_now()
            )
            row.manifest_json = manifest_json
            row.revision = revision
            row.registered_by = registered_by
            row.registered_at = _now()
            session.add(row)
            session.commit()
            return revision

    def add_version(self, model_id: str, version: ModelVersion, registered_by: str) -> int:
        """Register a derived version (a candidate) beside the others; idempotent by name."""
        manifest = self.get(model_id)
        if manifest is None:
            raise KeyError(model_id)
        version = self._pinned(version, len(manifest.versions))
        if self._artifacts is not None:
            check_version(manifest, version, len(manifest.versions), self._artifacts)
        if any(v.version == version.version for v in manifest.versions):
            if manifest.version(version.version) == version:
                return self._revision(model_id)
            raise ValueError(f"{model_id} already has a different version {version.version!r}")
        updated = manifest.model_copy(update={"versions": [*manifest.versions, version]})
        return self.register(updated, registered_by)

    def revision(self, model_id: str) -> int:
        """The model's current revision; 0 if it is not registered."""
        return self._revision(model_id)

    def pinned(self, manifest: ModelManifest) -> ModelManifest:
        """``manifest`` as it would be stored: every artifact checked and its sha256 recorded
        (what a change is judged on, so re-sending a registered manifest changes nothing).

        Raises :class:`~registry.limits.ManifestRejected` like :meth:`register`, for a
        key the manifest format does not have (a typo would otherwise be ignored), for
        a manifest that declares no features, and for an artifact that does not load or
        does not fit the manifest (``registry/fit.py``)."""
        unknown = manifest.unknown_keys()
        if unknown:
            raise ManifestRejected(
                unknown[0],
                "unknown key: the manifest format has no such field (see docs/manifest.md)",
                "extra_forbidden",
            )
        require_features(manifest)
        versions = [self._pinned(v, i) for i, v in enumerate(manifest.versions)]
        if self._artifacts is not None:
            check_fit(manifest, versions, self._artifacts)
        pinned = manifest.model_copy(
            update={"versions": versions, "fallback": self._pinned_rules(manifest)}
        )
        storable_json(pinned)  # judged whole before anyone asks a router about it
        return pinned

    def _pinned_rules(self, manifest: ModelManifest) -> FallbackRules | None:
        """The fallback rules with their file's sha256 recorded, once they parse and name only
        the manifest's features (errors carry the rules' YAML path)."""
        fallback = manifest.fallback
        if fallback is None:
            return None
        try:
            artifact_name(fallback.rules)
        except ValueError as error:
            raise ManifestRejected(("fallback", "rules"), str(error), "artifact") from None
        if self._artifacts is None:
            return fallback
        try:
            content = self._artifacts.read_pinned(fallback.rules, fallback.sha256)
            parse_rules(
                content.decode(),
                {f.name: f.type for f in manifest.features},
                decision=manifest.outcomes.decision is not None,
                amount=manifest.outcomes.amount is not None,
            )
        except ArtifactError as error:
            raise ManifestRejected(("fallback", error.field), str(error), "artifact") from error
        except (RulesError, UnicodeDecodeError) as error:
            raise ManifestRejected(("fallback", "rules"), str(error), "rules") from error
        return fallback.model_copy(update={"sha256": hashlib.sha256(content).hexdigest()})

    def _pinned(self, version: ModelVersion, index: int) -> ModelVersion:
        """The version with its artifact's sha256 recorded (and a given one checked)."""
        try:
            artifact_name(version.artifact)
        except ValueError as error:
            raise ManifestRejected(
                ("versions", index, "artifact"), str(error), "artifact"
            ) from None
        if self._artifacts is None:
            return version
        try:
            digest = self._artifacts.digest(version.artifact)
        except ArtifactError as error:
            raise ManifestRejected(
                ("versions", index, error.field), str(error), "artifact"
            ) from error
        if version.sha256 is not None and version.sha256 != digest:
            raise ManifestRejected(
                ("versions", index, "sha256"),
                f"artifact {version.artifact!r} has sha256 {digest}, not the {version.sha256} "
                "given",
                "artifact",
            )
        return version.model_copy(update={"sha256": digest})

    def _revision(self, model_id: str) -> int:
        with Session(self._engine) as session:
            row = session.get(RegisteredModel, model_id)
            return row.revision if row else 0

    def get(self, model_id: str) -> ModelManifest | None:
        with Session(self._engine) as session:
            row = session.get(RegisteredModel, model_id)
        return _parsed(row) if row else None

    def list(self) -> list[RegisteredModel]:
        with Session(self._engine) as session:
            return list(session.exec(select(RegisteredModel).order_by(RegisteredModel.id)))

    def manifests(self) -> Manifests:
        """Every registered manifest that can be read, and what is wrong with the rest."""
        readable: Readable = []
        unreadable: Unreadable = []
        for row in self.list():
            try:
                readable.append(_parsed(row))
            except UnreadableManifest as error:
                unreadable.append(error)
        return readable, unreadable


def _parsed(row: RegisteredModel) -> ModelManifest:
    try:
        return ModelManifest.model_validate_json(row.manifest_json)
    except ValidationError as error:
        raise UnreadableManifest(row.id, _problems(error)) from error


def _now() -> datetime:
    return datetime.now(UTC)

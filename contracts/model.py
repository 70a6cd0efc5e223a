"""The model manifest: what Fairlane knows about a model it can open incidents on."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, model_validator

from contracts.monitoring import MonitoringPolicy
from contracts.targets import TARGET_ID, RoutedTo, RouterRef
from store.paths import PathEscape, relative_parts

__all__ = [
    "TARGET_ID",
    "Lineage",
    "ModelManifest",
    "ModelVersion",
    "Outcomes",
    "RoutedTo",
    "RouterRef",
]

_MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Lineage(BaseModel):
    """How a version was derived: enough to reproduce it and to audit why it exists."""

    parent: str
    strategy: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data_digests: dict[str, str] = Field(default_factory=dict)
    code_version: str
    incident_id: str | None = None


VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def artifact_name(value: str) -> str:
    """An artifact is named relative to the artifacts directory, never by a path.

    A caller-named path would let whoever registers a manifest (or posts a training
    callback) choose the file a worker or the router opens; see ``store/artifacts.py``.
    """
    try:
        relative_parts(value, "artifact")
    except PathEscape as error:
        raise ValueError(
            f"{error}; name a file relative to the artifacts directory (FAIRLANE_ARTIFACTS_DIR)"
        ) from None
    return value


def version_name(value: str) -> str:
    """Version names become file names: a slug, and never ``..``."""
    if ".." in value:
        raise ValueError(f"version {value!r} must not contain '..'")
    return value


VersionName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=VERSION_PATTERN), AfterValidator(version_name)
]
ArtifactName = Annotated[
    str,
    Field(min_length=1, max_length=4096, description="file name under the artifacts directory"),
]
"""Checked with :func:`artifact_name` where a manifest is accepted (the registry), not
where one is read: inputs of incidents opened before artifacts were names (recorded
histories, running incidents) must still decode; the loader refuses their paths."""


class ModelVersion(BaseModel):
    version: VersionName
    artifact: ArtifactName
    sha256: str | None = Field(
        default=None,
        pattern=SHA256_PATTERN,
        description="sha256 of the artifact file, recorded by the registry at registration "
        "(given: checked against the file); a file that no longer matches is never loaded",
    )
    training_data: str | None = None
    validation_data: str | None = None
    lineage: Lineage | None = None


class Outcomes(BaseModel):
    """Which columns hold the model's outcomes; at least one of the two."""

    decision: str | None = Field(default=None, description="binary decision column")
    amount: str | None = Field(default=None, description="continuous amount column")

    @model_validator(mode="after")
    def _at_least_one(self) -> Outcomes:
        if self.decision is None and self.amount is None:
            raise ValueError(
                "name a binary `decision` column, a continuous `amount` column, or both"
            )
        return self


class ModelManifest(BaseModel):
    """A registered model: its versions, data, outcomes, protected attributes and router."""

    id: str = Field(description="lower-case slug, e.g. credit-limit")
    description: str = ""
    versions: list[ModelVersion] = Field(min_length=1)
    primary_version: str
    label: str | None = Field(default=None, description="ground-truth label column")
    outcomes: Outcomes
    protected_attributes: list[str] = Field(min_length=1)
    strata: list[str] = Field(default_factory=list, description="e.g. income_band, credit_band")
    router: RouterRef
    monitoring: MonitoringPolicy = Field(
        default_factory=MonitoringPolicy,
        description="the drift monitor's bands and cadence, and the playbook a breach or a "
        "firing alert opens",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelManifest:
        if not _MODEL_ID.match(self.id):
            raise ValueError(f"id {self.id!r} must be a lower-case slug (a-z, 0-9, -)")
        names = [v.version for v in self.versions]
        if len(set(names)) != len(names):
            raise ValueError(f"versions are not unique: {names}")
        if self.primary_version not in names:
            raise ValueError(f"primary_version {self.primary_version!r} is not one of {names}")
        return self

    def version(self, name: str) -> ModelVersion:
        for candidate in self.versions:
            if candidate.version == name:
                return candidate
        raise KeyError(name)

"""The model manifest: what Fairlane knows about a model it can open incidents on."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, model_validator

from contracts.monitoring import MonitoringPolicy
from contracts.targets import TARGET_ID, RoutedTo, RouterRef

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


class ModelVersion(BaseModel):
    version: str = Field(min_length=1, max_length=64)
    artifact: str = Field(min_length=1, description="path of the model artifact")
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

"""The model manifest: what Fairlane knows about a model it can open incidents on."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from contracts.known_keys import ManifestPart
from contracts.monitoring import MonitoringPolicy
from contracts.names import PathEscape, relative_parts
from contracts.targets import TARGET_ID, RoutedTo, RouterRef

__all__ = [
    "DECISION_FIELDS",
    "METRIC_LABELS",
    "TARGET_ID",
    "Bin",
    "DecisionSource",
    "FallbackRules",
    "Feature",
    "Lineage",
    "ManifestPart",
    "ModelManifest",
    "ModelVersion",
    "Outcomes",
    "RoutedTo",
    "RouterRef",
    "StratumBins",
]


COLUMN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
"""A column name as data, logs and SQL mappings carry it (no spaces, quotes or separators)."""

_MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Lineage(ManifestPart):
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


class ModelVersion(ManifestPart):
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


class Outcomes(ManifestPart):
    """Which columns hold the model's outcomes; at least one of the two.

    With both, the amount is granted with a positive decision: a negative decision's
    amount is 0 (a declined applicant has no limit, a rejected claim no payout).
    """

    decision: str | None = Field(default=None, description="binary decision column")
    amount: str | None = Field(default=None, description="continuous amount column")

    @model_validator(mode="after")
    def _at_least_one(self) -> Outcomes:
        if self.decision is None and self.amount is None:
            raise ValueError(
                "name a binary `decision` column, a continuous `amount` column, or both"
            )
        return self


class Feature(ManifestPart):
    """One input the model takes, by the name it has in the team's data."""

    name: str = Field(pattern=COLUMN)
    type: Literal["numeric", "categorical"]


class Bin(ManifestPart):
    """One bin of a numeric feature: ``at_least <= value < below``; open at an omitted end."""

    label: str = Field(min_length=1, max_length=64)
    at_least: float | None = None
    below: float | None = None


class StratumBins(ManifestPart):
    """A stratum derived from a numeric feature by declared bins (e.g. income bands).

    The bins must cover the whole line, in order, without gaps or overlaps: the first is
    open below, the last open above, and each starts where the one before it ends. So
    every value falls in exactly one bin and no decision is left out of the strata.
    """

    feature: str = Field(pattern=COLUMN, description="a numeric feature of the manifest")
    bins: list[Bin] = Field(min_length=2)

    @model_validator(mode="after")
    def _covers_the_line(self) -> StratumBins:
        first, last = self.bins[0], self.bins[-1]
        if first.at_least is not None:
            raise ValueError(
                f"bin {first.label!r} starts at {first.at_least}: the first bin must be open "
                "below (omit at_least), so every value falls in a bin"
            )
        if last.below is not None:
            raise ValueError(
                f"bin {last.label!r} ends at {last.below}: the last bin must be open above "
                "(omit below), so every value falls in a bin"
            )
        for before, after in zip(self.bins, self.bins[1:], strict=False):
            if before.below is None or after.at_least != before.below:
                raise ValueError(
                    f"bin {after.label!r} starts at {after.at_least} but bin {before.label!r} "
                    f"ends at {before.below}: each bin must start where the one before ends "
                    "(no gap, no overlap)"
                )
            if after.below is not None and after.below <= after.at_least:
                raise ValueError(f"bin {after.label!r} is empty or reversed")
        labels = [b.label for b in self.bins]
        if len(set(labels)) != len(labels):
            raise ValueError(f"bin labels are not unique: {labels}")
        return self

    def label(self, value: float) -> str:
        """The label of the bin holding ``value``."""
        edges = [b.at_least for b in self.bins[1:]]
        return self.bins[bisect_right(edges, value)].label  # type: ignore[type-var]


class FallbackRules(ManifestPart):
    """The declarative rules a Fairlane gateway answers with while the model is contained.

    A YAML file in the artifacts directory, by name (never a path), pinned by sha256 at
    registration like an artifact; its schema is :mod:`contracts.fallback_rules`.
    """

    rules: ArtifactName
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)


DECISION_FIELDS = (
    "decision_id",
    "at",
    "version",
    "served_by",
    "shadow",
    "decision",
    "amount",
    "outcome",
)
"""Fields of a decision a ``sql`` source's ``columns`` may map, besides the manifest's
protected attributes, column strata and binned features (docs/decision-sources.md)."""

METRIC_LABELS = ("model", "version", "served_by", "group", "stratum", "decision", "outcome")
"""The labels of the decision-metric convention (docs/decision-metrics.md)."""

_PROMETHEUS_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DecisionSource(ManifestPart):
    """Where the live analysis (canary looks, drift monitor) reads the model's decisions.

    ``gateway``: the Fairlane gateway's decision log; ``sql``: a table or view in a
    database an operator declared (``database`` names it; the URL and credential stay
    with the operator), with ``columns`` mapping Fairlane's fields to its columns;
    ``prometheus``: a Prometheus server an operator declared, in the documented metric
    convention with ``labels`` mapping; ``ingest``: decisions the team's service reports
    to ``POST /v1/models/{id}/decisions``.
    """

    kind: Literal["gateway", "sql", "prometheus", "ingest"] = "gateway"
    database: str | None = Field(default=None, pattern=TARGET_ID)
    table: str | None = Field(default=None, pattern=COLUMN)
    columns: dict[str, Annotated[str, Field(pattern=COLUMN)]] = Field(
        default_factory=dict,
        description="sql: Fairlane's field (see DECISION_FIELDS, or a protected attribute, "
        "column stratum or binned feature of the manifest) -> the table's column",
    )
    server: str | None = Field(default=None, pattern=TARGET_ID)
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="prometheus: a label of the convention (METRIC_LABELS) -> the series' label",
    )

    @model_validator(mode="after")
    def _complete(self) -> DecisionSource:
        if self.kind == "sql" and (self.database is None or self.table is None):
            raise ValueError("a `sql` decision source names its `database` and `table`")
        if self.kind == "prometheus" and self.server is None:
            raise ValueError("a `prometheus` decision source names its `server`")
        for name, label in self.labels.items():
            if name not in METRIC_LABELS:
                raise ValueError(f"labels.{name}: not a label of the convention {METRIC_LABELS}")
            if not _PROMETHEUS_LABEL.match(label):
                raise ValueError(f"labels.{name}: {label!r} is not a Prometheus label name")
        return self


class ModelManifest(ManifestPart):
    """A registered model: its versions, data, outcomes, protected attributes and router.

    Everything Fairlane knows of a team's model comes from here: feature names and types,
    protected attributes and their groups, strata (columns, or bins of a numeric feature),
    outcomes and label. The reference is ``docs/manifest.md``.
    """

    id: str = Field(description="lower-case slug, e.g. credit-limit")
    description: str = ""
    versions: list[ModelVersion] = Field(min_length=1)
    primary_version: str
    label: str | None = Field(default=None, description="ground-truth label column")
    outcomes: Outcomes
    features: list[Feature] = Field(
        default_factory=list,
        description="what the model takes, in order; required at registration (older "
        "incident inputs without it still read)",
    )
    protected_attributes: list[str] = Field(min_length=1)
    groups: dict[str, list[str]] = Field(
        default_factory=dict,
        description="the groups of each protected attribute, when declared: a decision "
        "reported with another group is refused",
    )
    strata: list[str] = Field(
        default_factory=list,
        description="stratum names: a column of the data, or a name declared in `bins`",
    )
    bins: dict[str, StratumBins] = Field(
        default_factory=dict, description="strata derived from numeric features by bins"
    )
    fallback: FallbackRules | None = None
    decisions: DecisionSource = Field(default_factory=DecisionSource)
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
        self._names_agree()
        return self

    def _names_agree(self) -> None:
        """Every name the manifest uses refers to something it declares."""
        features = {f.name: f for f in self.features}
        if len(features) != len(self.features):
            raise ValueError("features: names are not unique")
        for attribute in self.groups:
            if attribute not in self.protected_attributes:
                raise ValueError(f"groups.{attribute}: not one of protected_attributes")
        for attribute, groups in self.groups.items():
            if not groups or len(set(groups)) != len(groups):
                raise ValueError(f"groups.{attribute}: name each group once")
        for name, binned in self.bins.items():
            if name not in self.strata:
                raise ValueError(f"bins.{name}: not one of strata")
            if features and binned.feature not in features:
                raise ValueError(f"bins.{name}.feature: {binned.feature!r} is not a feature")
            if features and features[binned.feature].type != "numeric":
                raise ValueError(f"bins.{name}.feature: {binned.feature!r} is not numeric")
        outcomes = {
            name
            for name in (self.label, self.outcomes.decision, self.outcomes.amount)
            if name is not None
        }
        for name in sorted(outcomes & set(features)):
            raise ValueError(f"features: {name!r} is an outcome or the label, not an input")
        mappable = {
            *DECISION_FIELDS,
            *self.protected_attributes,
            *(s for s in self.strata if s not in self.bins),
            *(b.feature for b in self.bins.values()),
        }
        for field in self.decisions.columns:
            if field not in mappable:
                raise ValueError(
                    f"decisions.columns.{field}: not a field of a decision, a protected "
                    "attribute, a column stratum or a binned feature"
                )

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def stratum_of(self, record: Mapping[str, Any]) -> str:
        """The stratum key of one record: its strata labels joined by ``|``.

        A binned stratum is computed from its feature; any other is read as a column.
        """
        labels = []
        for name in self.strata:
            binned = self.bins.get(name)
            labels.append(
                binned.label(float(record[binned.feature])) if binned else str(record[name])
            )
        return "|".join(labels)

    def group_of(self, record: Mapping[str, Any]) -> str:
        """The group key of one record: one attribute's value, or ``a=x|b=y`` for several."""
        if len(self.protected_attributes) == 1:
            return str(record[self.protected_attributes[0]])
        return "|".join(f"{a}={record[a]}" for a in self.protected_attributes)

    def version(self, name: str) -> ModelVersion:
        for candidate in self.versions:
            if candidate.version == name:
                return candidate
        raise KeyError(name)

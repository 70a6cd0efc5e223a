"""Registration's check that each version's artifact is the model the manifest describes.

A manifest is a promise about a file: these features, these outcomes. At registration
every version's artifact is opened through the one loader (:mod:`analysis.models`, at
the digest being recorded), and refused with the path of the field at fault when

- it does not load (not a scikit-learn model, a refused format): ``versions.N.artifact``;
- it takes a feature the manifest does not declare: ``versions.N.artifact``;
- it lacks an outcome the manifest declares (a decision column without a classifier,
  an amount column without a regressor): ``versions.N.artifact``;
- a declared feature is taken by no version at all: ``features.N.name``.

So a model that registers is one every step of the runbook can score and audit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from contracts.model import ModelManifest, ModelVersion
from registry.limits import ManifestRejected
from store.artifacts import ArtifactStore

if TYPE_CHECKING:
    from analysis.models import LoadedArtifact

MODEL_TYPE = "model"


def require_features(manifest: ModelManifest) -> None:
    """A manifest declares what its model takes: the names every step reads rows by."""
    if not manifest.features:
        raise ManifestRejected(
            ("features",),
            "declare the features the model takes, each with its type (numeric or "
            "categorical); see docs/manifest.md",
            "missing",
        )


def check_fit(
    manifest: ModelManifest, versions: Sequence[ModelVersion], store: ArtifactStore
) -> None:
    """Every version's artifact loads and fits the manifest; else :class:`ManifestRejected`."""
    taken: set[str] = set()
    for index, version in enumerate(versions):
        artifact = _opened(store, version, index)
        taken.update(artifact.features)
        _fits(manifest, artifact, index)
    for index, feature in enumerate(manifest.features):
        if feature.name not in taken:
            raise ManifestRejected(
                ("features", index, "name"),
                f"no version of the model takes {feature.name!r} (they take "
                f"{sorted(taken)}): declare only the features the model takes",
                MODEL_TYPE,
            )


def check_version(
    manifest: ModelManifest, version: ModelVersion, index: int, store: ArtifactStore
) -> None:
    """One added version (a candidate) loads and fits the manifest."""
    _fits(manifest, _opened(store, version, index), index)


def _opened(store: ArtifactStore, version: ModelVersion, index: int) -> LoadedArtifact:
    from analysis.models import ModelFileError, load_artifact

    try:
        return load_artifact(store, version.artifact, version.sha256)
    except ModelFileError as error:
        raise ManifestRejected(
            ("versions", index, "artifact"), f"does not load as a model: {error}", MODEL_TYPE
        ) from None


def _fits(manifest: ModelManifest, artifact: LoadedArtifact, index: int) -> None:
    where = ("versions", index, "artifact")
    declared = set(manifest.feature_names)
    unknown = [name for name in artifact.features if name not in declared]
    if unknown:
        raise ManifestRejected(
            where,
            f"the model takes {unknown}, which the manifest's features do not declare "
            f"(declared: {manifest.feature_names})",
            MODEL_TYPE,
        )
    outcomes = manifest.outcomes
    for outcome, column in (("decision", outcomes.decision), ("amount", outcomes.amount)):
        if column is not None and outcome not in artifact.models:
            raise ManifestRejected(
                where,
                f"the manifest declares the {outcome} {column!r} but the artifact has no "
                f"{outcome} model (it holds: {', '.join(artifact.models)})",
                MODEL_TYPE,
            )

"""The model versions a gateway process has in memory, loaded once and shared by every request.

Loading an artifact takes tens of milliseconds, scoring one request a few, so versions
are loaded on deployment and at start-up, never per request. A version a process has
not loaded yet (deployed through another gateway process sharing the database) is
loaded on first use from the artifact its deployment names, at the sha256 pinned when
it was deployed. Every load goes through the one scorer (:mod:`analysis.scoring`) and
so the one loader (``store/artifacts.py``): by name, inside the artifacts directory, at
the pinned digest, never a pickle unless the operator allows them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from analysis.models import ModelFileError
from analysis.scoring import Scorer, load_scorer
from contracts.model import ModelManifest
from router.contract import ModelContract
from router.deployments import DeploymentRow
from router.schemas import FallbackDocument
from store.artifacts import ArtifactStore

Pinned = tuple[str, str | None]
"""An artifact's name in the artifacts directory and the sha256 it must have."""


class ModelUnavailableError(Exception):
    """A route names a version this gateway cannot score with."""

    def __init__(self, model: str, version: str, reason: str) -> None:
        super().__init__(f"model {model!r} version {version!r} is unavailable: {reason}")
        self.reason = str(self)


class VersionLoadError(ValueError):
    """A deployed version's artifact could not be opened or is not what it claims to be."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"version {version!r}: {reason}")
        self.version = version
        self.reason = str(self)


def load_versions(
    store: ArtifactStore, versions: Mapping[str, Pinned], contract: ModelContract | None = None
) -> dict[str, Scorer]:
    """Load every artifact at its pinned digest; all or nothing.

    Each artifact that records a version must hold the one it is deployed as, and,
    when the ``contract`` is given, take only features it declares (a model needing a
    column no request carries could never score) and give the outcomes it declares.
    """
    features = None if contract is None else contract.manifest.feature_names
    loaded: dict[str, Scorer] = {}
    for version, (name, sha256) in versions.items():
        try:
            scorer = load_scorer(store, name, sha256)
        except ModelFileError as error:
            raise VersionLoadError(version, str(error)) from error
        if scorer.version is not None and scorer.version != version:
            raise VersionLoadError(version, f"artifact {name!r} holds version {scorer.version!r}")
        if features is not None:
            undeclared = [f for f in scorer.features if f not in features]
            if undeclared:
                raise VersionLoadError(
                    version,
                    f"artifact {name!r} takes features the contract does not declare: {undeclared}",
                )
        if contract is not None:
            held = set(scorer.artifact.models)
            wanted = {"decision"} if contract.decides else set()
            wanted |= {"amount"} if contract.grants else set()
            if wanted - held:
                raise VersionLoadError(
                    version,
                    f"artifact {name!r} has no {' or '.join(sorted(wanted - held))} model, "
                    f"which the manifest's outcomes declare",
                )
        loaded[version] = scorer
    return loaded


class LoadedVersions:
    """Loaded versions per model id, each remembered with the artifact it came from."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._models: dict[str, dict[str, tuple[str, Scorer]]] = {}
        self._contracts: dict[str, tuple[datetime, ModelContract]] = {}
        self._loading = threading.Lock()

    def contract(self, row: DeploymentRow) -> ModelContract:
        """The contract of a deployment, built once per deployment (its ``updated_at``)."""
        held = self._contracts.get(row.model)
        if held is not None and held[0] == row.updated_at:
            return held[1]
        fallback = None if row.fallback is None else FallbackDocument.model_validate(row.fallback)
        contract = ModelContract.build(ModelManifest.model_validate(row.manifest), fallback)
        self._contracts[row.model] = (row.updated_at, contract)
        return contract

    def install(
        self, model: str, artifacts: Mapping[str, str], loaded: Mapping[str, Scorer]
    ) -> None:
        """Make exactly these versions the model's loaded set (a deployment replaces the last)."""
        self._models[model] = {version: (artifacts[version], loaded[version]) for version in loaded}

    def get(self, model: str, version: str, artifact: str, pin: Callable[[], str | None]) -> Scorer:
        """The loaded version, loading it from ``artifact`` if this process does not hold it yet.

        ``pin`` gives the sha256 recorded at deployment; it is read only when a load is
        needed, so serving a held version costs no extra query.
        """
        held = self._models.get(model, {}).get(version)
        if held is not None and held[0] == artifact:
            return held[1]
        with self._loading:
            held = self._models.get(model, {}).get(version)
            if held is not None and held[0] == artifact:
                return held[1]
            try:
                loaded = load_versions(self.store, {version: (artifact, pin())})[version]
            except VersionLoadError as exc:
                raise ModelUnavailableError(model, version, exc.reason) from exc
            self._models.setdefault(model, {})[version] = (artifact, loaded)
            return loaded

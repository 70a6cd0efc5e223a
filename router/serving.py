"""The model versions a router process has in memory, loaded once and shared by every request.

Loading an artifact takes tens of milliseconds, scoring one applicant a few, so
versions are loaded on deployment and at start-up, never per request. A version a
process has not loaded yet (deployed through another router process sharing the
database) is loaded on first use from the artifact its deployment names, at the
sha256 pinned when it was deployed (``store/artifacts.py``: by name, inside the
artifacts directory, never a pickle unless the operator allows them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from demo.credit_model import LoadedModel, ModelLoadError, load_model
from store.artifacts import ArtifactStore

Pinned = tuple[str, str | None]
"""An artifact's name in the artifacts directory and the sha256 it must have."""


class ModelUnavailableError(Exception):
    """A route names a version this router cannot score with."""

    def __init__(self, model: str, version: str, reason: str) -> None:
        super().__init__(f"model {model!r} version {version!r} is unavailable: {reason}")
        self.reason = str(self)


def load_versions(store: ArtifactStore, versions: Mapping[str, Pinned]) -> dict[str, LoadedModel]:
    """Load every artifact at its pinned digest, checking each holds the version it is deployed as.

    Raises :class:`ModelLoadError` for the first artifact that fails, so a deployment
    is all or nothing.
    """
    loaded: dict[str, LoadedModel] = {}
    for version, (name, sha256) in versions.items():
        model = load_model(store, name, sha256)
        if model.version != version:
            raise ModelLoadError(Path(name), f"it holds version {model.version!r}, not {version!r}")
        loaded[version] = model
    return loaded


class ModelRegistry:
    """Loaded versions per model id, each remembered with the artifact it came from."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._models: dict[str, dict[str, tuple[str, LoadedModel]]] = {}
        self._loading = threading.Lock()

    def install(
        self, model: str, artifacts: Mapping[str, str], loaded: Mapping[str, LoadedModel]
    ) -> None:
        """Make exactly these versions the model's loaded set (a deployment replaces the last)."""
        self._models[model] = {version: (artifacts[version], loaded[version]) for version in loaded}

    def get(
        self, model: str, version: str, artifact: str, pin: Callable[[], str | None]
    ) -> LoadedModel:
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
            except ModelLoadError as exc:
                raise ModelUnavailableError(model, version, exc.reason) from exc
            self._models.setdefault(model, {})[version] = (artifact, loaded)
            return loaded

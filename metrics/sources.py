"""The decision source each model declares, as the provider the live analysis reads.

A model's manifest says where its decisions are (``decisions.kind``): the Fairlane
gateway's log, a table in a declared database, a declared Prometheus, or reports to
Fairlane's own ingestion route. The canary and the drift monitor ask this provider
(registered as ``decision_log``, the name every playbook and monitoring policy used
so far, and as ``manifest``) and it answers from the source the model's current
manifest declares; a gateway model reads exactly what it read before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime

from contracts.metrics import DecisionWindow
from contracts.model import ModelManifest
from contracts.targets import RouterRef
from metrics.databases import DecisionDatabases, UnknownDatabase
from metrics.prometheus import PrometheusProvider
from metrics.provider import MetricsProvider, ProviderError, UndeclaredSource
from metrics.sql import SqlDecisionsProvider

ManifestLookup = Callable[[str], ModelManifest | None]


class DeclaredSourceProvider:
    """Reads each model's window from the source its manifest declares."""

    name = "manifest"

    def __init__(
        self,
        manifests: ManifestLookup,
        *,
        gateway: MetricsProvider,
        ingest: MetricsProvider,
        databases: DecisionDatabases,
        prometheus_servers: Mapping[str, str],
    ) -> None:
        self._manifests = manifests
        self._gateway = gateway
        self._ingest = ingest
        self._databases = databases
        self._prometheus_servers = dict(prometheus_servers)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(databases={self._databases.ids}, "
            f"prometheus={sorted(self._prometheus_servers)})"
        )

    async def window(
        self,
        router: RouterRef,
        model: str,
        candidate_version: str,
        since: datetime,
        until: datetime,
    ) -> DecisionWindow:
        """The window from the model's declared source.

        Raises :class:`~metrics.provider.UndeclaredSource` when the manifest names a
        database or Prometheus server no operator declared (no retry can fix that).
        """
        manifest = await asyncio.to_thread(self._manifests, model)
        if manifest is None:
            raise ProviderError(
                f"model {model!r} is not registered: its decision source is unknown"
            )
        provider = self.for_manifest(manifest)
        return await provider.window(router, model, candidate_version, since, until)

    def for_manifest(self, manifest: ModelManifest) -> MetricsProvider:
        """The provider of ``manifest``'s decision source."""
        source = manifest.decisions
        if source.kind == "gateway":
            return self._gateway
        if source.kind == "ingest":
            return self._ingest
        if source.kind == "sql":
            try:
                engine = self._databases.engine(source.database or "")
            except UnknownDatabase as error:
                raise UndeclaredSource(f"model {manifest.id!r}: {error}") from None
            return SqlDecisionsProvider(engine, manifest)
        url = self._prometheus_servers.get(source.server or "")
        if url is None:
            declared = ", ".join(sorted(self._prometheus_servers)) or "none"
            raise UndeclaredSource(
                f"model {manifest.id!r}: Prometheus server {source.server!r} is not declared "
                f"on this worker (declared: {declared}; FAIRLANE_PROMETHEUS_SERVERS or "
                "FAIRLANE_PROMETHEUS_URL)"
            )
        return PrometheusProvider(url, labels=source.labels)

"""The Temporal connection, from settings alone: embedded dev server, any cluster, or Cloud."""

from __future__ import annotations

from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, TLSConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from config import Settings
from contracts.incident import SEARCH_ATTRIBUTES
from stack.codec import data_converter


def tls_config(settings: Settings) -> TLSConfig | bool:
    if not settings.temporal_tls:
        return False
    return TLSConfig(
        server_root_ca_cert=_read(settings.temporal_tls_ca),
        client_cert=_read(settings.temporal_tls_cert),
        client_private_key=_read(settings.temporal_tls_key),
    )


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client of the configured cluster; ``runtime`` (e.g. :func:`worker_runtime`) or the
    SDK's default one."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls_config(settings) or bool(api_key),
        api_key=api_key,
        data_converter=data_converter(settings),
        runtime=runtime,
    )


def worker_runtime(settings: Settings) -> Runtime | None:
    """A runtime serving Prometheus metrics at ``worker_metrics_address``, if one is set.

    The SDK's own metrics (``temporal_*``) and Fairlane's worker counters
    (:mod:`activities.metrics`) are served together at ``http://<address>/metrics``.
    The SDK's exporter has no authentication: bind it to loopback or a private network.
    A runtime owns a thread pool, so build one per process.
    """
    if not settings.worker_metrics_address:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=settings.worker_metrics_address)
        )
    )


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register Fairlane's search attributes on the namespace; returns those it added.

    Servers that cannot list attributes (the time-skipping test server) get all of
    them added, which they accept idempotently.
    """
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        existing = set(listed.custom_attributes)
    except RPCError as error:
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = set()
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)


def dev_server_search_attribute_args() -> list[str]:
    """`temporal server start-dev` flags that register the attributes at boot."""
    args: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    return args

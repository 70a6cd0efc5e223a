"""The metrics providers a worker is configured with, looked up by the name a playbook or
a monitoring policy gives."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio.exceptions import ApplicationError

from metrics.provider import MetricsProvider


def select_provider(providers: Mapping[str, MetricsProvider], name: str) -> MetricsProvider:
    """The provider called ``name``; a name this worker lacks is a non-retryable error."""
    provider = providers.get(name)
    if provider is None:
        raise ApplicationError(
            f"metrics provider {name!r} is not configured on this worker "
            f"(configured: {sorted(providers)})",
            type="UnknownMetricsProvider",
            non_retryable=True,
        )
    return provider

"""The metrics providers a worker is configured with, looked up by the name a playbook or
a monitoring policy gives.

``decision_log`` (the default everywhere) and ``manifest`` read each model from the
decision source its manifest declares (:mod:`metrics.sources`); ``gateway``,
``prometheus`` and ``ingest`` force one source whatever the manifest says.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio.exceptions import ApplicationError

from metrics.provider import MetricsProvider, UndeclaredSource


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


def undeclared_source(error: UndeclaredSource) -> ApplicationError:
    """No retry can declare a database or server: an operator has to act."""
    return ApplicationError(str(error), type="UndeclaredDecisionSource", non_retryable=True)

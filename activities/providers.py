"""The metrics providers a worker is configured with, looked up by the name a playbook or
a monitoring policy gives.

``decision_log`` (the default everywhere) and ``manifest`` read each model from the
decision source its manifest declares (:mod:`metrics.sources`); ``gateway``,
``prometheus`` and ``ingest`` force one source whatever the manifest says. The canary
and the monitor also read which outcomes the model makes (:func:`outcomes_made`), so
that a test on an outcome it does not make is not applicable rather than inconclusive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime

from temporalio.exceptions import ApplicationError

from activities.routing import unknown_target
from config.targets import UnknownTarget
from contracts.metrics import DecisionWindow
from contracts.model import ModelManifest
from contracts.targets import RouterRef
from metrics.provider import MetricsProvider, UndeclaredSource

Manifests = Callable[[str], ModelManifest | None]
"""The registry's lookup of a model's manifest by id (``ModelRegistry.get``)."""


async def outcomes_made(manifests: Manifests | None, model: str) -> dict[str, bool]:
    """Which outcomes ``model`` makes, as :func:`fairness.live.analyse_window` takes them.

    A model the registry does not know (or a worker given no registry) is judged on
    both, as before: the tests then run and say for themselves what they lack. The
    registry reads a database, so off the event loop.
    """
    manifest = await asyncio.to_thread(manifests, model) if manifests is not None else None
    if manifest is None:
        return {"decision": True, "amount": True}
    outcomes = manifest.outcomes
    return {"decision": outcomes.decision is not None, "amount": outcomes.amount is not None}


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


class DecisionWindows:
    """A model's live decisions over a window, read the one way the canary, the monitor and
    the fallback's window all read them: from the provider their policy names, with a
    failure no retry can mend made non-retryable, beside which outcomes the model makes."""

    def __init__(
        self, providers: Mapping[str, MetricsProvider], manifests: Manifests | None = None
    ) -> None:
        """``manifests`` (the registry's lookup) says which outcomes each model makes."""
        self._providers = dict(providers)
        self._manifests = manifests

    async def read(
        self,
        provider: str,
        router: RouterRef,
        model: str,
        candidate_version: str,
        since: datetime,
        until: datetime,
    ) -> DecisionWindow:
        source = select_provider(self._providers, provider)
        try:
            return await source.window(router, model, candidate_version, since, until)
        except UnknownTarget as error:
            raise unknown_target(error) from None
        except UndeclaredSource as error:
            raise undeclared_source(error) from None

    async def outcomes(self, model: str) -> dict[str, bool]:
        """Which outcomes ``model`` makes (:func:`outcomes_made`)."""
        return await outcomes_made(self._manifests, model)

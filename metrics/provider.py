"""The metrics-provider interface: live decisions of a model for a window, as cells.

The canary analysis (and the drift monitor) never talk to a router or to Prometheus
directly; they ask a provider for a :class:`~contracts.metrics.DecisionWindow`. The
decision-log provider reads the reference router's log; other sources plug in by
implementing this one method.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from contracts.metrics import DecisionWindow
from contracts.targets import RouterRef

NO_CANDIDATE = "(none)"
"""The candidate a window names when none is ramping (a monitored model, a contained one):
every live decision is then on the stable side. A decision log's window query needs a
name (an empty one is refused, by the reference gateway among others), and no version can
be called this (:data:`contracts.model.VERSION_PATTERN` has no parentheses), so no
decision is ever counted as a candidate's."""


class ProviderError(Exception):
    """The provider could not answer (unreachable, refused); worth retrying."""


class MetricsProvider(Protocol):
    name: str

    async def window(
        self,
        router: RouterRef,
        model: str,
        candidate_version: str,
        since: datetime,
        until: datetime,
    ) -> DecisionWindow:
        """Live decisions of ``model`` with ``since <= at < until``; shadow scores excluded.

        ``router`` names the routing target (never a URL to trust): a provider that talks
        to it resolves it from the worker's declared targets, credential included, and
        raises :class:`config.targets.UnknownTarget` for one that is not declared.
        """
        ...


class UndeclaredSource(LookupError):
    """A manifest's decision source names a database or server no operator declared.

    Not worth retrying: an operator has to declare it (or the manifest to change)."""

"""The ingest provider: windows of the decisions services reported to Fairlane itself.

``POST /v1/models/{id}/decisions`` writes them to Fairlane's own database through
:mod:`decisions.store`, rolled up per minute; a look here is the same rollup read the
gateway answers with, so it costs cells x minutes, not rows.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from contracts.metrics import DecisionWindow
from contracts.targets import RouterRef
from decisions.store import window
from metrics.provider import ProviderError


class IngestedDecisionsProvider:
    """Reads windows from Fairlane's database (``engine``); implements ``MetricsProvider``."""

    name = "ingest"

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._engine.url!r})"

    async def window(
        self,
        router: RouterRef,
        model: str,
        candidate_version: str,
        since: datetime,
        until: datetime,
    ) -> DecisionWindow:
        """Reported decisions of ``model`` in the minutes overlapping ``[since, until)``.

        ``router`` is not used: the decisions were reported here, whoever routed them.
        """
        try:
            return await asyncio.to_thread(self._window, model, candidate_version, since, until)
        except DBAPIError as exc:
            raise ProviderError(
                f"Fairlane's database could not read model {model!r}'s reported decisions: "
                f"{type(exc.orig).__name__}"
            ) from exc

    def _window(
        self, model: str, candidate_version: str, since: datetime, until: datetime
    ) -> DecisionWindow:
        with Session(self._engine) as session:
            return window(session, model, candidate_version, since, until, provider=self.name)

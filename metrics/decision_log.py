"""The decision-log provider: a window of live decisions from a Fairlane gateway's log.

The gateway answers ``GET /v1/models/{model}/decisions/summary`` (a
:class:`~decisions.records.WindowQuery` as query parameters) with
:func:`decisions.store.window` over its per-minute rollups, already relabelled as
canary arms; this provider only fetches it with the declared target's credential and
checks it is the window it asked for.
"""

from __future__ import annotations

from datetime import datetime

import httpx
from pydantic import ValidationError

from config.targets import TargetResolver
from contracts.metrics import DecisionWindow
from contracts.targets import RouterRef
from decisions.records import WINDOW_PATH, WindowQuery
from metrics.provider import ProviderError


class DecisionLogProvider:
    """Reads windows from a Fairlane gateway; implements ``MetricsProvider``.

    The gateway's URL and credential come from the worker's declared routing targets
    (``targets``), never from the request: the token goes only to the URL it was
    declared with.
    """

    name = "decision_log"

    def __init__(
        self,
        targets: TargetResolver,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._targets = targets
        self._timeout = timeout
        self._transport = transport

    def __repr__(self) -> str:
        return f"{type(self).__name__}(targets={self._targets.ids})"

    async def window(
        self,
        router: RouterRef,
        model: str,
        candidate_version: str,
        since: datetime,
        until: datetime,
    ) -> DecisionWindow:
        """Live decisions of ``model`` in the minutes overlapping ``[since, until)``.

        Raises :class:`~metrics.provider.ProviderError` with the gateway's reason when
        it cannot be reached, refuses, or answers something else than the window asked
        for, and :class:`~config.targets.UnknownTarget` (before any request) when
        ``router`` names no declared target.
        """
        target = self._targets.resolve(router.target, router.url)
        query = WindowQuery(candidate_version=candidate_version, since=since, until=until)
        where = f"the gateway at {target.url}"
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        try:
            async with httpx.AsyncClient(
                base_url=target.url,
                headers=headers,
                timeout=self._timeout,
                transport=self._transport,
            ) as client:
                response = await client.get(
                    WINDOW_PATH.format(model=model), params=query.model_dump(mode="json")
                )
        except httpx.HTTPError as exc:
            raise ProviderError(f"{where} is unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code != httpx.codes.OK:
            raise ProviderError(
                f"{where} did not summarise model {model!r} ({response.status_code}): "
                f"{_reason(response)}"
            )
        try:
            answer = DecisionWindow.model_validate_json(response.content)
        except ValidationError as exc:
            raise ProviderError(f"{where} answered something else than a window: {exc}") from exc
        asked = (model, candidate_version, since, until)
        if (answer.model, answer.candidate_version, answer.since, answer.until) != asked:
            raise ProviderError(f"{where} answered a window other than the one asked for")
        return answer.model_copy(update={"provider": self.name})


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:500]
    return str(body)[:500]

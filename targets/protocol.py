"""The one interface every routing target implements, and its typed failures.

The routing activities read and set a model's route through :class:`RouteTarget`
alone, so one read-compare-set (``workflows.ports.RouterPort.ensure``) drives every
kind of target. A failure is a :class:`TargetError` that already knows its
``ApplicationError`` type and whether a retry could help, so each kind words its own
refusals and the activities stay kind-blind.
"""

from __future__ import annotations

from typing import Protocol

from contracts.routing import Route, RouteUpdate
from contracts.steps import TargetRoute


class TargetError(Exception):
    """A target refused a request (``retryable`` False) or could not serve it now."""

    def __init__(self, message: str, type: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.retryable = retryable


class StaleRoute(TargetError):
    """The route changed since it was read (a newer generation, or another content):
    the write was refused and nothing changed. The caller re-reads and decides."""

    def __init__(self, message: str, current: Route | None = None) -> None:
        super().__init__(message, "StaleRoute", retryable=False)
        self.current = current


class RouteTarget(Protocol):
    """A model's route at one declared target: read it, and set it by compare-and-set.

    ``set_route`` applies ``update`` only when its generation is newer than the
    target's and (where the target has revisions) the route is still at
    ``expected_revision``; the very same update again (a retry) is answered with the
    route unchanged. Anything else raises :class:`StaleRoute`.
    """

    @property
    def target_id(self) -> str: ...

    async def read_route(self, model: str) -> TargetRoute: ...

    async def set_route(
        self, model: str, update: RouteUpdate, expected_revision: str | None = None
    ) -> TargetRoute: ...

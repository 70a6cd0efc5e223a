"""The client for a declared target, by its kind (the routing activities' one switch)."""

from __future__ import annotations

import asyncio

from config.targets import ResolvedFlagFile, ResolvedTarget
from router.client import RouterClient
from targets.flag_file import FlagFileTarget
from targets.gateway import GatewayTarget


def open_target(
    resolved: ResolvedTarget | ResolvedFlagFile, timeout_s: float = 10.0
) -> GatewayTarget | FlagFileTarget:
    """A target of its own, closed by ``async with``: for one-off reads (a registration
    check, a console page). A worker's activities use :class:`TargetClients`."""
    if isinstance(resolved, ResolvedFlagFile):
        return FlagFileTarget(resolved)
    return GatewayTarget(resolved, timeout_s)


class TargetClients:
    """One long-lived HTTP client per declared gateway target, shared by a worker's activities.

    Why: an HTTP client builds an SSL context when it is made, loading the CA store (about
    10 ms of CPU), and then opens a new connection. Made once per routing activity, that
    was half the containment worker's CPU in an alert storm, spent while models waited for
    their fallback. Targets are declared by operators at start-up, so there are few; a
    client is keyed by the target's id, URL and credential (a credential still only goes
    where it was declared) and by the event loop it serves, since an HTTP connection pool
    belongs to one loop.
    """

    def __init__(self, timeout_s: float = 10.0) -> None:
        self._timeout_s = timeout_s
        self._clients: dict[
            tuple[int, str, str, str], tuple[asyncio.AbstractEventLoop, RouterClient]
        ] = {}

    def open(self, resolved: ResolvedTarget | ResolvedFlagFile) -> GatewayTarget | FlagFileTarget:
        """The target, over this worker's shared client; ``async with`` leaves it open."""
        if isinstance(resolved, ResolvedFlagFile):
            return FlagFileTarget(resolved)
        token = resolved.token or ""
        loop = asyncio.get_running_loop()
        key = (id(loop), resolved.id, resolved.url, token)
        held = self._clients.get(key)
        if held is None or held[0] is not loop:  # an id reused by a new loop is a new loop
            held = loop, RouterClient(resolved.url, token, timeout=self._timeout_s)
            self._clients[key] = held
        return GatewayTarget(resolved, self._timeout_s, shared=held[1])

    async def aclose(self) -> None:
        """Close the clients of the running loop; those of loops already closed are gone."""
        loop = asyncio.get_running_loop()
        held, self._clients = list(self._clients.values()), {}
        for owner, client in held:
            if owner is loop:
                await client.aclose()

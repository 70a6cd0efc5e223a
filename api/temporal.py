"""The API's Temporal client, connected when first needed and again after a failed attempt.

The API must start, and answer 503 rather than die, while Temporal is down: at start
it tries once, and every request that needs Temporal before a connection exists tries
again (one attempt at a time). Once connected, the SDK's channel reconnects by itself
after an outage; calls made meanwhile fail with UNAVAILABLE, which ``api/errors.py``
answers with 503.
"""

from __future__ import annotations

import asyncio

import structlog
from temporalio.client import Client

from api.errors import ServiceUnavailable
from config import Settings
from stack.temporal import connect

log = structlog.get_logger(__name__)


class TemporalConnection:
    """A client of the configured cluster, made on first use; ``client()`` hands it out."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._lock: asyncio.Lock | None = None

    @classmethod
    def made(cls, client: Client, settings: Settings) -> TemporalConnection:
        """A connection already made (a test's server, a process that connected first)."""
        connection = cls(settings)
        connection._client = client
        return connection

    @property
    def connected(self) -> Client | None:
        """The client if a connection was made, without trying to make one."""
        return self._client

    async def client(self) -> Client:
        """The client, connecting first if need be; ServiceUnavailable if Temporal is not
        reachable now."""
        if self._client is not None:
            return self._client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None:
                self._client = await self._connect()
        return self._client

    async def _connect(self) -> Client:
        try:
            return await connect(self._settings)
        except RuntimeError as error:  # the SDK's "Failed client connect: ..."
            log.warning(
                "temporal not reachable",
                address=self._settings.temporal_address,
                error=str(error)[:500],
            )
            raise ServiceUnavailable(
                "temporal", "Temporal is unavailable (cannot connect); try again later"
            ) from error

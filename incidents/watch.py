"""Deliver a signal to a model's watch, starting the watch if it is not running.

Registering a model starts its watch (:func:`watch_manifest`): the first alert then
lands on a workflow that is already running and cached on the containment worker,
instead of creating it, and a changed manifest (a new routing target, another default
playbook) reaches a watch that is already running.

Signal-with-start is one atomic call on the server: concurrent deliveries for one
model all land in the same workflow, and none is lost between "is it running?" and
"start it".

A watch starts on the containment task queue (``Settings.resolved_containment_task_queue``),
whose worker slots containment does not share with incidents; ``task_queue`` only matters
when the signal starts the watch: one already running (on whatever queue it started on)
just gets the signal.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel
from temporalio.client import Client

from config import Settings
from contracts.model import ModelManifest
from contracts.watch import (
    SIGNAL_MANIFEST,
    WATCH_WORKFLOW,
    WatchInput,
    WatchSettings,
    watch_workflow_id,
)


@dataclass(frozen=True)
class WatchQueues:
    """Where a watch runs (the containment queue) and where it keeps its books (the main
    queue, whose worker writes each alert's trail record)."""

    watch: str
    bookkeeping: str

    @classmethod
    def of(cls, settings: Settings) -> WatchQueues:
        return cls(watch=settings.resolved_containment_task_queue, bookkeeping=settings.task_queue)


def watch_settings(manifest: ModelManifest) -> WatchSettings:
    """What the watch takes from ``manifest``."""
    return WatchSettings(
        target=manifest.router.target,
        router_url=manifest.router.url,
        default_playbook=manifest.monitoring.playbook,
        default_severity=manifest.monitoring.severity,
    )


def watch_input(manifest: ModelManifest, queues: WatchQueues) -> WatchInput:
    """How a watch starts when a signal is its first event."""
    return WatchInput(
        model=manifest.id,
        bookkeeping_task_queue=queues.bookkeeping,
        **dict(watch_settings(manifest)),
    )


async def watch_manifest(client: Client, queues: WatchQueues, manifest: ModelManifest) -> str:
    """Start ``manifest``'s watch if it is not running, and give it the manifest's settings."""
    return await signal_watch(client, queues, manifest, SIGNAL_MANIFEST, watch_settings(manifest))


async def signal_watch(
    client: Client, queues: WatchQueues, manifest: ModelManifest, signal: str, argument: BaseModel
) -> str:
    """Send ``signal`` to ``manifest``'s watch (started on ``queues.watch`` if need be);
    returns its workflow id."""
    workflow_id = watch_workflow_id(manifest.id)
    await client.start_workflow(
        WATCH_WORKFLOW,
        watch_input(manifest, queues),
        id=workflow_id,
        task_queue=queues.watch,
        start_signal=signal,
        start_signal_args=[argument],
    )
    return workflow_id

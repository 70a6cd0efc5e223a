"""Deliver a signal to a model's watch, starting the watch if it is not running.

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
from contracts.watch import WATCH_WORKFLOW, WatchInput, watch_workflow_id


@dataclass(frozen=True)
class WatchQueues:
    """Where a watch runs (the containment queue) and where it keeps its books (the main
    queue, whose worker writes each alert's trail record)."""

    watch: str
    bookkeeping: str

    @classmethod
    def of(cls, settings: Settings) -> WatchQueues:
        return cls(watch=settings.resolved_containment_task_queue, bookkeeping=settings.task_queue)


def watch_input(manifest: ModelManifest, queues: WatchQueues) -> WatchInput:
    """How a watch starts when a signal is its first event."""
    return WatchInput(
        model=manifest.id,
        target=manifest.router.target,
        router_url=manifest.router.url,
        default_playbook=manifest.monitoring.playbook,
        default_severity=manifest.monitoring.severity,
        bookkeeping_task_queue=queues.bookkeeping,
    )


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

"""Activities through which a model's watch reaches other workflows: it opens incidents,
and the playbook's ``monitor`` step re-arms the watch after a promotion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from contracts.decisions import DecisionKey
from contracts.model import ModelManifest
from contracts.watch import (
    ARM_MONITOR,
    OPEN_INCIDENT,
    SIGNAL_ARM_MONITOR,
    ArmMonitorInput,
    OpenIncidentRequest,
)
from incidents.service import IncidentService, UnknownModelError
from incidents.watch import WatchQueues, signal_watch
from registry.service import ModelRegistry

log = structlog.get_logger(__name__)


class IncidentActivities:
    def __init__(
        self,
        client: Client,
        task_queue: str,
        registry: ModelRegistry,
        playbooks_dir: Path | None,
        *,
        watch_task_queue: str | None = None,
        decision_key: Callable[[], DecisionKey | None] = lambda: None,
    ) -> None:
        """Incidents start on ``task_queue``; a watch not yet running on ``watch_task_queue``
        (the containment queue; by default ``task_queue`` too). ``decision_key`` reads the
        API's public decision key when an incident opens (the API may export it after this
        worker started)."""
        self._client = client
        self._watch_queues = WatchQueues(
            watch=watch_task_queue or task_queue, bookkeeping=task_queue
        )
        self._incidents = IncidentService(
            self._connected, task_queue, registry, playbooks_dir, decision_key
        )

    @activity.defn(name=OPEN_INCIDENT)
    async def open_incident(self, request: OpenIncidentRequest) -> str:
        """Start the incident; idempotent, so a retried attempt finds it already started."""
        try:
            await self._incidents.open(
                incident_id=request.incident_id,
                model=request.model,
                playbook=request.playbook,
                severity=request.severity,
                summary=request.summary,
                commander=request.commander,
                opened_at=request.opened_at,
                trigger=request.trigger,
                last_resort=True,
            )
        except UnknownModelError as error:
            raise _unknown_model(error) from error
        except WorkflowAlreadyStartedError:
            log.info("incident already started", incident_id=request.incident_id)
        return request.incident_id

    @activity.defn(name=ARM_MONITOR)
    async def arm_monitor(self, request: ArmMonitorInput) -> str:
        """Arm the model's drift monitor (starting its watch if need be)."""
        manifest = self._manifest(request.model)
        return await signal_watch(
            self._client,
            self._watch_queues,
            manifest,
            SIGNAL_ARM_MONITOR,
            request.arm,
        )

    async def _connected(self) -> Client:
        return self._client

    def _manifest(self, model: str) -> ModelManifest:
        try:
            return self._incidents.manifest(model)
        except UnknownModelError as error:
            raise _unknown_model(error) from error


def _unknown_model(error: UnknownModelError) -> ApplicationError:
    return ApplicationError(str(error), type="UnknownModel", non_retryable=True)

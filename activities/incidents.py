"""Activities through which a model's watch reaches other workflows: it opens incidents,
and the playbook's ``monitor`` step re-arms the watch after a promotion."""

from __future__ import annotations

from pathlib import Path

import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from contracts.incident import IncidentInput
from contracts.model import ModelManifest
from contracts.watch import (
    ARM_MONITOR,
    OPEN_INCIDENT,
    SIGNAL_ARM_MONITOR,
    ArmMonitorInput,
    OpenIncidentRequest,
)
from incidents.start import start_incident
from incidents.watch import signal_watch
from playbooks.loader import PlaybookError, builtin_playbook, find_playbook
from playbooks.schema import Playbook
from registry.service import ModelRegistry

log = structlog.get_logger(__name__)

LAST_RESORT_PLAYBOOK = "drift-rollback"
"""Opened when a policy names a playbook that cannot be loaded: an incident on a
contained model must open whatever happens to its configuration."""


class IncidentActivities:
    def __init__(
        self,
        client: Client,
        task_queue: str,
        registry: ModelRegistry,
        playbooks_dir: Path | None,
        *,
        watch_task_queue: str | None = None,
    ) -> None:
        """Incidents start on ``task_queue``; a watch not yet running on ``watch_task_queue``
        (the containment queue; by default ``task_queue`` too)."""
        self._client = client
        self._task_queue = task_queue
        self._watch_task_queue = watch_task_queue or task_queue
        self._registry = registry
        self._playbooks_dir = playbooks_dir

    @activity.defn(name=OPEN_INCIDENT)
    async def open_incident(self, request: OpenIncidentRequest) -> str:
        """Start the incident; idempotent, so a retried attempt finds it already started."""
        manifest = self._manifest(request.model)
        playbook, summary = self._playbook(request.playbook, request.summary)
        incident = IncidentInput(
            incident_id=request.incident_id,
            model=manifest,
            playbook=playbook,
            severity=request.severity,
            summary=summary,
            commander=request.commander,
            opened_at=request.opened_at,
            trigger=request.trigger,
        )
        try:
            await start_incident(self._client, self._task_queue, incident)
        except WorkflowAlreadyStartedError:
            log.info("incident already started", incident_id=request.incident_id)
        return request.incident_id

    @activity.defn(name=ARM_MONITOR)
    async def arm_monitor(self, request: ArmMonitorInput) -> str:
        """Arm the model's drift monitor (starting its watch if need be)."""
        manifest = self._manifest(request.model)
        return await signal_watch(
            self._client, self._watch_task_queue, manifest, SIGNAL_ARM_MONITOR, request.arm
        )

    def _manifest(self, model: str) -> ModelManifest:
        manifest = self._registry.get(model)
        if manifest is None:
            raise ApplicationError(
                f"model {model!r} is not registered", type="UnknownModel", non_retryable=True
            )
        return manifest

    def _playbook(self, name: str, summary: str) -> tuple[Playbook, str]:
        try:
            return find_playbook(name, self._playbooks_dir), summary
        except PlaybookError as error:
            log.error("policy playbook unusable", playbook=name, error=str(error))
            note = (
                f" [playbook {name!r} could not be loaded ({error}); "
                f"opened on {LAST_RESORT_PLAYBOOK}]"
            )
            return builtin_playbook(LAST_RESORT_PLAYBOOK), (summary[: 4000 - len(note)] + note)

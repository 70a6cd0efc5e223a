"""Opening an incident, in one place: the API's ``POST /v1/incidents`` and the watch's
``open_incident`` activity both come here.

Opening means: find the model's registered manifest, pick the playbook, pin both (and
the API's public decision key) into an :class:`~contracts.incident.IncidentInput`, and
start the incident workflow under the incident's id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from temporalio.client import Client

from config.channels import ChannelResolver
from contracts.decisions import DecisionKey
from contracts.incident import IncidentInput
from contracts.model import ModelManifest
from contracts.severity import Severity
from contracts.watch import IncidentTrigger
from incidents.start import start_incident
from playbooks.loader import PlaybookError, builtin_playbook, find_playbook
from playbooks.schema import Playbook
from registry.service import ModelRegistry

log = structlog.get_logger(__name__)

LAST_RESORT_PLAYBOOK = "drift-rollback"
"""Opened when a watch's policy names a playbook that cannot be loaded: an incident on a
contained model must open whatever happens to its configuration."""
SUMMARY_LIMIT = 4000


class UnknownModelError(LookupError):
    """The incident names a model the registry does not have."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"model {model!r} is not registered")


@dataclass(frozen=True)
class IncidentService:
    """Opens incidents on ``task_queue``, with models from ``registry`` and the team's
    playbooks from ``playbooks_dir`` (before the shipped ones).

    ``client`` hands out the Temporal client when an incident is about to start, so the
    model and the playbook are checked first: bad input is refused even while Temporal
    is unreachable (the API's connection is made on first use).

    ``decision_key`` is read when an incident opens: the API's public key, which the
    workflow checks human decisions against (the API may export it after a worker started).
    """

    client: Callable[[], Awaitable[Client]]
    task_queue: str
    registry: ModelRegistry
    playbooks_dir: Path | None
    decision_key: Callable[[], DecisionKey | None]
    channels: ChannelResolver | None = None
    """The notification channels operators declared: a playbook naming another is refused
    before anything starts, rather than failing at its first send."""

    async def open(
        self,
        *,
        incident_id: str,
        model: str,
        playbook: str,
        severity: Severity,
        summary: str,
        commander: str,
        opened_at: datetime,
        trigger: IncidentTrigger | None = None,
        last_resort: bool = False,
    ) -> IncidentInput:
        """Start the incident and return what it was started with.

        Raises :class:`UnknownModelError` first, then :class:`PlaybookError` for a playbook
        that cannot be used, unless ``last_resort``: then the incident opens on
        :data:`LAST_RESORT_PLAYBOOK`, its summary saying why. A second start of the same
        id raises Temporal's ``WorkflowAlreadyStartedError``.
        """
        manifest = self.manifest(model)
        if last_resort:
            chosen, summary = playbook_or_last_resort(playbook, self.playbooks_dir, summary)
        else:
            chosen = find_playbook(playbook, self.playbooks_dir)
            undeclared = self.channels.undeclared(chosen.channel_refs()) if self.channels else []
            if undeclared:
                raise PlaybookError(f"playbook {playbook!r}", undeclared)
        incident = IncidentInput(
            incident_id=incident_id,
            model=manifest,
            playbook=chosen,
            severity=severity,
            summary=summary,
            commander=commander,
            opened_at=opened_at,
            trigger=trigger,
            decision_key=self.decision_key(),
        )
        await start_incident(await self.client(), self.task_queue, incident)
        return incident

    def manifest(self, model: str) -> ModelManifest:
        manifest = self.registry.get(model)
        if manifest is None:
            raise UnknownModelError(model)
        return manifest


def playbook_or_last_resort(
    name: str, playbooks_dir: Path | None, summary: str
) -> tuple[Playbook, str]:
    """The playbook ``name``, or the last-resort one with a note in the summary saying why."""
    try:
        return find_playbook(name, playbooks_dir), summary
    except PlaybookError as error:
        log.error("policy playbook unusable", playbook=name, error=str(error))
        note = (
            f" [playbook {name!r} could not be loaded ({error}); opened on {LAST_RESORT_PLAYBOOK}]"
        )
        return builtin_playbook(LAST_RESORT_PLAYBOOK), summary[: SUMMARY_LIMIT - len(note)] + note

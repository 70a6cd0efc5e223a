"""One way to open an incident (incidents/service.py), as the API and the watch use it.

Against the real dev server: the model is checked first, then the playbook, and
Temporal is not asked for either refusal; a watch's incident opens on the last-resort
playbook when its policy's cannot be loaded; a second start of the same id is refused.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.testing import WorkflowEnvironment

from audit.trail import AuditTrail
from contracts.severity import Severity
from incidents.service import LAST_RESORT_PLAYBOOK, IncidentService, UnknownModelError
from playbooks.loader import PlaybookError
from registry.service import ModelRegistry
from tests.fixtures.incidents import TEST_SIGNER, manifest_for
from tests.fixtures.services import RouterService


async def _never_connect() -> Client:
    raise AssertionError("bad input must be refused before Temporal is asked")


def _service(
    trail: AuditTrail, router_service: RouterService, client: object, playbooks: Path | None
) -> IncidentService:
    registry = ModelRegistry(trail.engine)
    registry.register(manifest_for(router_service), "test")
    return IncidentService(
        client,  # type: ignore[arg-type]
        f"nobody-{uuid.uuid4().hex[:6]}",  # no worker: the incident only has to start
        registry,
        playbooks,
        lambda: TEST_SIGNER.key,
    )


def _opening(model: str, playbook: str) -> dict[str, object]:
    return {
        "incident_id": f"inc-test-{uuid.uuid4().hex[:10]}",
        "model": model,
        "playbook": playbook,
        "severity": Severity.SEV2,
        "summary": "parity breach",
        "commander": "dana.ic",
        "opened_at": datetime.now(UTC),
    }


async def test_bad_input_is_refused_model_first_without_asking_temporal(
    trail: AuditTrail, router_service: RouterService
) -> None:
    service = _service(trail, router_service, _never_connect, None)
    with pytest.raises(UnknownModelError, match="'no-such-model' is not registered"):
        await service.open(**_opening("no-such-model", "no-such-playbook"))  # type: ignore[arg-type]
    with pytest.raises(PlaybookError, match="no such playbook"):
        await service.open(**_opening(router_service.model, "no-such-playbook"))  # type: ignore[arg-type]


async def test_an_unloadable_policy_playbook_opens_on_the_last_resort(
    dev_env: WorkflowEnvironment, trail: AuditTrail, router_service: RouterService, tmp_path: Path
) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\nsteps: [\n")

    async def client() -> Client:
        return dev_env.client

    service = _service(trail, router_service, client, tmp_path)
    opening = _opening(router_service.model, "broken")
    incident = await service.open(**opening, last_resort=True)  # type: ignore[arg-type]
    handle = dev_env.client.get_workflow_handle(incident.incident_id)
    try:
        assert incident.playbook.name == LAST_RESORT_PLAYBOOK
        assert incident.summary.startswith("parity breach [playbook 'broken' could not be loaded")
        assert incident.model == manifest_for(router_service)
        assert incident.decision_key == TEST_SIGNER.key
        described = await handle.describe()
        assert described.status is WorkflowExecutionStatus.RUNNING
        with pytest.raises(WorkflowAlreadyStartedError):
            await service.open(**opening, last_resort=True)  # type: ignore[arg-type]
    finally:
        await handle.terminate("test over")

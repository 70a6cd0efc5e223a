"""Signed trail checkpoints are kept in the incident's own Temporal history.

A database writer can rewrite the trail and its head, and (with the key) even re-sign;
what the incident's history holds was written by Temporal and is out of their reach.
Every phase change's append signs a checkpoint, and ``record_audit_event`` answers
with it, so the local activity's marker in the history carries it.
"""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from audit.checkpoints import checkpoint_signed
from contracts.audit import RecordedEvent
from playbooks.loader import builtin_playbook
from tests.fixtures.api import Api
from tests.fixtures.incidents import incident_input, start_incident, wait_for_phase
from tests.fixtures.services import RouterService

pytestmark = pytest.mark.integration


async def test_each_phase_change_leaves_a_signed_checkpoint_in_the_history(
    dev_env: WorkflowEnvironment, router_service: RouterService, module_api: Api
) -> None:
    api = module_api
    await router_service.reset()
    incident = incident_input(router_service, builtin_playbook("drift-rollback"))
    handle = await start_incident(dev_env.client, incident, api.settings.task_queue)
    await wait_for_phase(handle, "awaiting_signoff")
    history = await handle.fetch_history()
    converter = dev_env.client.data_converter
    answers: list[RecordedEvent] = []
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if marker.marker_name != "core_local_activity" or "result" not in marker.details:
            continue
        [result] = await converter.decode(marker.details["result"].payloads, [object])
        if isinstance(result, dict) and "checkpoint" in result:
            answers.append(RecordedEvent.model_validate(result))
    signed = [a.checkpoint for a in answers if a.checkpoint is not None]
    assert len(signed) >= 2, answers  # open -> running -> awaiting_signoff
    assert api.trail.signing is not None
    records = {r.seq: r for r in api.trail.records(incident.incident_id)}
    for checkpoint in signed:
        assert checkpoint_signed(checkpoint, api.trail.signing.public_key)
        assert records[checkpoint.seq].hash == checkpoint.head
    assert sum(records[c.seq].kind == "phase.changed" for c in signed) >= 2
    await handle.terminate("test over")

"""An incident ended from outside Fairlane (``temporal workflow terminate``, the Web UI)
is noticed and recorded on the trail, with who and why, exactly once."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from audit.trail import AuditTrail
from contracts.incident import Phase
from incidents.outside import ENDED_OUTSIDE, record_outside_ends
from playbooks.loader import builtin_playbook
from tests.fixtures.incidents import incident_input, start_incident, wait_for_phase
from tests.fixtures.services import RouterService, running_worker

TEMPORAL = str(Path(sys.executable).parent / "temporal")


async def test_a_terminated_incident_is_recorded_on_the_trail_once(
    dev_env: WorkflowEnvironment, router_service: RouterService, trail: AuditTrail
) -> None:
    await router_service.reset()
    queue = f"outside-{uuid.uuid4().hex[:8]}"
    incident = incident_input(router_service, builtin_playbook("drift-rollback"))
    async with running_worker(dev_env.client, trail, router_service, queue):
        handle = await start_incident(dev_env.client, incident, queue)
        await wait_for_phase(handle, Phase.AWAITING_SIGNOFF.value)
        terminate = await asyncio.create_subprocess_exec(
            TEMPORAL,
            "workflow",
            "terminate",
            "--workflow-id",
            incident.incident_id,
            "--reason",
            "closing this one by hand",
            "--identity",
            "mallory@ops-box",
            "--address",
            dev_env.client.service_client.config.target_host,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await terminate.communicate()
        assert terminate.returncode == 0, (out + err).decode()

    assert ENDED_OUTSIDE not in [r.kind for r in trail.records(incident.incident_id)]
    recorded: list[str] = []
    for _ in range(100):  # visibility is eventually consistent
        recorded += await record_outside_ends(dev_env.client, trail)
        if incident.incident_id in recorded:
            break
        await asyncio.sleep(0.1)
    assert incident.incident_id in recorded

    again = await record_outside_ends(dev_env.client, trail)
    assert incident.incident_id not in again
    ended = [r for r in trail.records(incident.incident_id) if r.kind == ENDED_OUTSIDE]
    assert len(ended) == 1
    assert ended[0].actor == "mallory@ops-box"
    detail = json.loads(ended[0].detail)
    assert detail["status"] == "terminated"
    assert detail["reason"] == "closing this one by hand"
    assert trail.verify().ok

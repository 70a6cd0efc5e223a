"""Start an incident workflow with the search attributes auditors filter by."""

from __future__ import annotations

import secrets
from datetime import datetime

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from contracts.incident import (
    SA_MODEL,
    SA_PHASE,
    SA_PLAYBOOK,
    SA_SEVERITY,
    WORKFLOW_TYPE,
    IncidentInput,
    IncidentState,
    Phase,
)


def new_incident_id(now: datetime, token: str | None = None) -> str:
    """``inc-<date>-<8 hex>``; pass ``token`` where randomness must be deterministic."""
    return f"inc-{now:%Y%m%d}-{token or secrets.token_hex(4)}"


async def start_incident(
    client: Client, task_queue: str, incident: IncidentInput
) -> WorkflowHandle[object, IncidentState]:
    """Start ``incident``; its id is the workflow id, so a second start of it fails."""
    handle: WorkflowHandle[object, IncidentState] = await client.start_workflow(
        WORKFLOW_TYPE,
        incident,
        id=incident.incident_id,
        task_queue=task_queue,
        result_type=IncidentState,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_MODEL, incident.model.id),
                SearchAttributePair(SA_SEVERITY, incident.severity.value),
                SearchAttributePair(SA_PHASE, Phase.OPEN.value),
                SearchAttributePair(SA_PLAYBOOK, incident.playbook.name),
            ]
        ),
    )
    return handle

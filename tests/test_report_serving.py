"""The impact assessment is served only while the file served is the one recorded.

A stand-in workflow answers the incident state query on the real dev server with an
assessment written by ``analysis.assessment.write_assessment``; the report route then
reads the files it names. Altering the HTML (the rendering people actually read) must
be refused, not served with the untouched Markdown's digest; a removed file is 410.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from analysis.assessment import write_assessment
from api import reports
from api.temporal import TemporalConnection
from api.tokens import Role, TokenStore, issue_token
from config import Settings
from contracts.analysis import AssessmentInput, Findings
from contracts.incident import QUERY_STATE, IncidentState, Phase
from contracts.model import ModelManifest, ModelVersion, Outcomes, RouterRef
from contracts.severity import Severity
from playbooks.steps import ImpactAssessmentStep
from tests.fixtures.incidents import DEMO_FEATURES

pytestmark = pytest.mark.integration


@workflow.defn(name="report-serving-stand-in")
class StandInIncident:
    """Holds an incident state and answers the query the report route asks."""

    def __init__(self) -> None:
        self._state: IncidentState | None = None

    @workflow.run
    async def run(self, state: IncidentState) -> None:
        self._state = state
        await workflow.wait_condition(lambda: False)

    @workflow.query(name=QUERY_STATE)
    def state(self) -> IncidentState | None:
        return self._state


@pytest_asyncio.fixture
async def served(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, IncidentState]]:
    model = ModelManifest(
        id="credit-limit",
        versions=[ModelVersion(version="v1", artifact="nonexistent/model.skops")],
        primary_version="v1",
        outcomes=Outcomes(decision="approved"),
        features=DEMO_FEATURES,
        protected_attributes=["group"],
        router=RouterRef(target="gateway"),
    )
    incident_id = f"inc-report-{uuid.uuid4().hex[:8]}"
    step = ImpactAssessmentStep(name="assess", kind="impact_assessment")
    request = AssessmentInput(
        incident_id=incident_id, model=model, step=step, summary="gap", findings=Findings()
    )
    assessment = await asyncio.to_thread(
        write_assessment, request, tmp_path / "incidents" / incident_id
    )
    state = IncidentState(
        incident_id=incident_id,
        model=model.id,
        playbook="ethical-audit",
        playbook_version="1",
        severity=Severity.SEV1,
        summary="gap",
        commander="ic",
        opened_at=datetime.now(UTC),
        phase=Phase.AWAITING_SIGNOFF,
        findings=Findings(assessment=assessment),
    )
    queue = f"reports-{uuid.uuid4().hex[:6]}"
    tokens_file = tmp_path / "tokens.json"
    token = issue_token(tokens_file, "legal1", [Role.LEGAL])
    app = FastAPI()
    app.state.temporal = TemporalConnection.made(dev_env.client, Settings(data_dir=tmp_path))
    app.state.tokens = TokenStore(tokens_file)
    app.include_router(reports.router)
    async with Worker(
        dev_env.client,
        task_queue=queue,
        workflows=[StandInIncident],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await dev_env.client.start_workflow(
            StandInIncident.run, state, id=incident_id, task_queue=queue
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://fairlane",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield client, state
        await handle.terminate("test over")


def _path(state: IncidentState, format: str) -> Path:
    assessment = state.findings.assessment
    assert assessment is not None
    return Path(assessment.markdown if format == "md" else assessment.html)


async def test_both_renderings_are_served_with_their_digests(
    served: tuple[httpx.AsyncClient, IncidentState],
) -> None:
    client, state = served
    assessment = state.findings.assessment
    assert assessment is not None and assessment.html_digest is not None
    for format, digest in (("md", assessment.digest), ("html", assessment.html_digest)):
        response = await client.get(f"/v1/incidents/{state.incident_id}/report?format={format}")
        assert response.status_code == 200, response.text
        assert response.content == _path(state, format).read_bytes()
        assert response.headers["X-Assessment-Digest"] == assessment.digest
        assert response.headers["X-Content-Digest"] == digest


@pytest.mark.parametrize("format", ["html", "md"])
async def test_an_altered_rendering_is_refused(
    served: tuple[httpx.AsyncClient, IncidentState], format: str
) -> None:
    client, state = served
    path = _path(state, format)
    path.write_bytes(path.read_bytes().replace(b"Impact", b"Imp4ct", 1))

    response = await client.get(f"/v1/incidents/{state.incident_id}/report?format={format}")

    assert response.status_code == 409
    assert "it was altered, so it is not served" in response.json()["detail"]
    assert "X-Assessment-Digest" not in response.headers


async def test_a_removed_file_is_gone_not_an_error(
    served: tuple[httpx.AsyncClient, IncidentState],
) -> None:
    client, state = served
    _path(state, "html").unlink()

    response = await client.get(f"/v1/incidents/{state.incident_id}/report?format=html")

    assert response.status_code == 410
    assert "is gone" in response.json()["detail"]

"""The report a regulator reads: real HTML tables and a PDF, drawn from a real incident's
structured findings (the demo credit data with its planted proxy, audited, remediated,
validated and signed off on the time-skipping server), served with the report route's
auth; the digest stays the Markdown's, the document the approver signed."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pypdf import PdfReader
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from api import reports
from api.temporal import TemporalConnection
from api.tokens import Role, TokenStore, issue_token
from audit.trail import AuditTrail
from config import Settings
from contracts.incident import QUERY_STATE, IncidentState, Phase
from playbooks.loader import load_playbook_text
from registry.service import ModelRegistry
from reports.assessment_document import assessment_document
from reports.evidence import gather_evidence
from reports.html import render_html
from reports.pdf import render_pdf
from store.db import create_tables, make_engine
from tests.fixtures.incidents import (
    decide,
    incident_input,
    manifest_for,
    start_incident,
    wait_for_phase,
)
from tests.fixtures.services import RouterService, running_worker, time_skipping_server

pytestmark = pytest.mark.integration

PLAYBOOK = """
name: report-test
version: "1"
steps:
  - {name: contain, kind: route, serving: fallback}
  - name: audits
    kind: parallel
    steps:
      - {name: provenance, kind: provenance_audit}
      - {name: attribution, kind: attribution_audit, outcome: amount, sample_size: 600}
  - name: remediate
    kind: remediate
    strategies: [{name: drop_proxies}, {name: reweigh}]
    max_accuracy_loss: 0.05
  - name: validate
    kind: sandbox_validate
    gates: {max_equalized_odds_difference: 0.5, max_conditional_amount_disparity: 0.2,
            min_disparate_impact_ratio: 0.5, max_accuracy_loss: 0.1, bootstrap_samples: 100}
  - {name: assess, kind: impact_assessment}
  - name: approve
    kind: signoff
    subject: approve the remediation
    bind_to_assessment: true
    roles: [{role: legal}]
"""
COMMENT = "Read the per-stratum tables; the gap closes. Approved — D. Ñúñez"


@pytest_asyncio.fixture(scope="module")
async def signed_off(
    router_service: RouterService, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[IncidentState]:
    """One real incident, run to its end with the legal approval bound to its assessment."""
    folder = tmp_path_factory.mktemp("report-trail")
    engine = make_engine(f"sqlite:///{folder / 'fairlane.db'}")
    create_tables(engine)
    trail = AuditTrail(engine)
    files = router_service.files
    manifest = manifest_for(router_service)
    manifest.label = "approved"
    manifest.versions[0].training_data = str(files.training_csv)
    manifest.versions[0].validation_data = str(files.validation_csv)
    ModelRegistry(engine).register(manifest, "test")
    await router_service.reset()
    incident = incident_input(router_service, load_playbook_text(PLAYBOOK))
    incident.model = manifest
    queue = f"report-{uuid.uuid4().hex[:8]}"
    async with (
        time_skipping_server() as env,
        running_worker(env.client, trail, router_service, queue),
    ):
        handle = await start_incident(env.client, incident, queue)
        state = await wait_for_phase(handle, Phase.AWAITING_SIGNOFF, timeout_s=300)
        assert state.findings.assessment is not None
        await decide(
            handle,
            "dana.legal",
            "legal",
            "approve",
            assessment_digest=state.findings.assessment.digest,
            comment=COMMENT,
        )
        final: IncidentState = await handle.result()
    await router_service.reset()
    assert final.phase is Phase.RESOLVED
    yield final


@workflow.defn(name="regulator-report-stand-in")
class StandInIncident:
    """Answers the state query with the finished incident's state, for the API route."""

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
async def api(
    dev_env: WorkflowEnvironment, signed_off: IncidentState, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, dict[str, str], str]]:
    incident_id = f"inc-regulator-{uuid.uuid4().hex[:8]}"
    state = signed_off.model_copy(update={"incident_id": incident_id})
    tokens_file = tmp_path / "tokens.json"
    tokens = {
        "auditor": issue_token(tokens_file, "auditor", [Role.AUDITOR]),
        "legal": issue_token(tokens_file, "legal1", [Role.LEGAL]),
    }
    app = FastAPI()
    app.state.temporal = TemporalConnection.made(dev_env.client, Settings(data_dir=tmp_path))
    app.state.tokens = TokenStore(tokens_file)
    app.include_router(reports.router)
    queue = f"regulator-{uuid.uuid4().hex[:6]}"
    async with Worker(
        dev_env.client,
        task_queue=queue,
        workflows=[StandInIncident],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await dev_env.client.start_workflow(
            StandInIncident.run, state, id=incident_id, task_queue=queue
        )
        yield app, tokens, incident_id
        await handle.terminate("test over")


def _client(app: FastAPI, token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://fairlane", headers=headers
    )


def _groups(state: IncidentState) -> list[str]:
    evidence = gather_evidence(state)
    assert evidence.validation is not None
    return [g.group for g in evidence.validation.baseline.held_out.slicings[0].groups]


async def test_the_html_has_real_tables_with_each_group_and_the_signoff_record(
    signed_off: IncidentState,
) -> None:
    assessment = signed_off.findings.assessment
    assert assessment is not None
    document = assessment_document(gather_evidence(signed_off), assessment)
    html = render_html(document)
    assert html.count("<table>") >= 6 and "<pre>" not in html
    for group in _groups(signed_off):
        assert re.search(rf"<tr><td>{re.escape(group)}</td><td class=\"num\">[\d,]+</td>", html)
    assert '<th scope="col">gap before</th>' in html  # the per-stratum table
    assert "zip_code" in html  # the planted proxy, in the proxy evidence table
    signoff_row = re.search(r"<tr><td>dana\.legal</td><td>legal</td><td>approve</td>.*?</tr>", html)
    assert signoff_row is not None
    assert assessment.digest in signoff_row.group(0) and "Ñúñez" in signoff_row.group(0)
    assert "&lt;" not in document.title  # nothing double-escaped
    # During containment: what the fallback decided, read when the assessment was written
    # from the router's log (whatever reached the shared test router in that window).
    window = signed_off.findings.fallback_window
    assert window is not None and window.since is not None and window.until is not None
    assert "<td>during containment (fallback)</td>" in html
    if window.analysis is None:
        assert window.decisions == 0 and f"no numbers: {window.unavailable}" in html
    else:
        assert f"{window.decisions:,} decisions" in html and "decisions by group" in html


async def test_the_pdf_is_a_pdf_with_the_same_content(signed_off: IncidentState) -> None:
    assessment = signed_off.findings.assessment
    assert assessment is not None
    pdf = render_pdf(assessment_document(gather_evidence(signed_off), assessment))
    assert pdf.startswith(b"%PDF-")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    compact = re.sub(r"\s+", "", text)
    assert "AlgorithmicImpactAssessment" in compact
    assert "dana.legal" in compact and "Ñúñez" in compact
    assert re.sub(r"\s+", "", assessment.digest) in compact
    for group in _groups(signed_off):
        assert group in compact
    assert "Thesign-offrecord" in compact and "Withineachstratum" in compact


async def test_served_with_the_report_routes_auth_and_the_digest_of_record_unchanged(
    api: tuple[FastAPI, dict[str, str], str], signed_off: IncidentState
) -> None:
    app, tokens, incident_id = api
    assessment = signed_off.findings.assessment
    assert assessment is not None
    markdown = await asyncio.to_thread(Path(assessment.markdown).read_bytes)
    async with _client(app, tokens["auditor"]) as client:
        html = await client.get(f"/v1/incidents/{incident_id}/report.html")
        pdf = await client.get(f"/v1/incidents/{incident_id}/report.pdf")
        md = await client.get(f"/v1/incidents/{incident_id}/report")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "<table>" in html.text
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    for response in (html, pdf, md):
        assert response.headers["X-Assessment-Digest"] == assessment.digest
    # What approvers signed is untouched: the Markdown served, and its hash, are as recorded.
    assert md.content == markdown == await asyncio.to_thread(Path(assessment.markdown).read_bytes)
    assert "sha256:" + hashlib.sha256(markdown).hexdigest() == assessment.digest
    async with _client(app, None) as anonymous:
        refused = await anonymous.get(f"/v1/incidents/{incident_id}/report.pdf")
    assert refused.status_code == 401


async def test_an_altered_report_file_is_not_rendered(
    api: tuple[FastAPI, dict[str, str], str], signed_off: IncidentState
) -> None:
    app, tokens, incident_id = api
    validation = signed_off.findings.validation
    assert validation is not None
    path = Path(validation.report.path)
    original = await asyncio.to_thread(path.read_bytes)
    await asyncio.to_thread(path.write_bytes, original.replace(b'"rows"', b'"rows" ', 1))
    try:
        async with _client(app, tokens["legal"]) as client:
            response = await client.get(f"/v1/incidents/{incident_id}/report.html")
    finally:
        await asyncio.to_thread(path.write_bytes, original)
    assert response.status_code == 409 and "altered" in response.json()["detail"]

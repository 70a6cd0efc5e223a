"""The ethical-audit steps in the incident workflow, with the real engines on real data.

Time-skipping server, the production worker and activities, the reference router,
the demo credit data with its planted zip-code proxy: the audits find the proxy, the
remediation loop obeys the gates, and sign-offs bind to the assessment they read.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from audit.trail import AuditTrail
from contracts.incident import Phase
from contracts.model import ModelManifest
from playbooks.loader import load_playbook_text
from registry.service import ModelRegistry
from tests.fixtures.incidents import decide, incident_input, start_incident, wait_for_phase
from tests.fixtures.services import RouterService, running_worker, time_skipping_server

AUDITS = """
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
"""


def _playbook(
    gates: str, signoff_failure: str = "{action: goto, step: remediate, max_times: 1}"
) -> str:
    return f"""
name: audit-test
version: "1"
steps:
{AUDITS}
  - name: validate
    kind: sandbox_validate
    gates: {gates}
    on_failure: {{action: goto, step: remediate, max_times: 1}}
  - {{name: assess, kind: impact_assessment}}
  - name: approve
    kind: signoff
    subject: approve the remediation
    bind_to_assessment: true
    roles: [{{role: legal}}]
    on_failure: {{action: goto, step: remediate, max_times: 1}}
"""


LOOSE = (
    "{max_equalized_odds_difference: 0.5, max_conditional_amount_disparity: 0.2,"
    " min_disparate_impact_ratio: 0.5, max_accuracy_loss: 0.1, bootstrap_samples: 100}"
)
IMPOSSIBLE = "{max_conditional_amount_disparity: 0.0, bootstrap_samples: 100}"


@pytest.fixture
def registered(router_service: RouterService, trail: AuditTrail) -> ModelManifest:
    from tests.fixtures.incidents import manifest_for

    files = router_service.files
    manifest = manifest_for(router_service)
    manifest.label = "approved"
    manifest.versions[0].training_data = str(files.training_csv)
    manifest.versions[0].validation_data = str(files.validation_csv)
    ModelRegistry(trail.engine).register(manifest, "test")
    return manifest


@pytest_asyncio.fixture(scope="module")
async def audit_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own: these incidents run minutes of real
    computation, and time skipping is global to a server, so they must not share one."""
    async with time_skipping_server() as env:
        yield env


@pytest.fixture(autouse=True)
async def _fresh_route(router_service: RouterService) -> None:
    await router_service.reset()


def _queue() -> str:
    return f"audit-{uuid.uuid4().hex[:8]}"


async def test_audits_find_the_proxy_and_signoff_binds_to_the_assessment(
    audit_env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    registered: ModelManifest,
) -> None:
    incident = incident_input(router_service, load_playbook_text(_playbook(LOOSE)))
    incident.model = registered
    queue = _queue()
    async with running_worker(audit_env.client, trail, router_service, queue):
        handle = await start_incident(audit_env.client, incident, queue)
        state = await wait_for_phase(handle, Phase.AWAITING_SIGNOFF, timeout_s=240)
        findings = state.findings
        assert findings.provenance and "zip_code" in findings.provenance.suspected_proxies
        assert findings.confirmed_proxies == ["zip_code"]
        assert findings.candidate and findings.candidate.strategy.startswith("drop_proxies")
        assert findings.validation and findings.validation.verdict == "pass"
        assessment = findings.assessment
        assert assessment is not None
        markdown = Path(assessment.markdown).read_bytes()  # noqa: ASYNC240
        assert "sha256:" + hashlib.sha256(markdown).hexdigest() == assessment.digest
        assert b"zip_code" in markdown

        with pytest.raises(WorkflowUpdateFailedError) as unbound:
            await decide(handle, "lee.legal", "legal")
        assert "bound to impact assessment" in str(unbound.value.cause)
        approved = await decide(
            handle, "lee.legal", "legal", "approve", assessment_digest=assessment.digest
        )
        assert approved.signoff_outcome == "approved"
        final = await handle.result()

    assert final.phase is Phase.RESOLVED
    decided = [r for r in trail.records(incident.incident_id) if r.kind == "signoff.decided"]
    assert [json.loads(r.detail)["assessment_digest"] for r in decided] == [assessment.digest]
    registry = ModelRegistry(trail.engine).get(registered.id)
    assert registry is not None
    candidate = registry.version(findings.candidate.version)
    assert candidate.lineage is not None and candidate.lineage.parent == registered.primary_version


async def test_a_rejection_loops_back_and_an_old_assessment_no_longer_counts(
    audit_env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    registered: ModelManifest,
) -> None:
    incident = incident_input(router_service, load_playbook_text(_playbook(LOOSE)))
    incident.model = registered
    queue = _queue()
    async with running_worker(audit_env.client, trail, router_service, queue):
        handle = await start_incident(audit_env.client, incident, queue)
        first = await wait_for_phase(handle, Phase.AWAITING_SIGNOFF, timeout_s=240)
        old = first.findings.assessment
        assert old is not None
        await decide(handle, "l1", "legal", "reject", assessment_digest=old.digest)
        while True:  # back through remediate, validate and a new assessment
            state = await wait_for_phase(handle, Phase.AWAITING_SIGNOFF, timeout_s=240)
            if (
                state.findings.remediation_rounds == 2
                and state.signoff
                and state.signoff.outcome == "pending"
            ):
                break
        new = state.findings.assessment
        assert new is not None and new.digest != old.digest
        with pytest.raises(WorkflowUpdateFailedError) as stale:
            await decide(handle, "l2", "legal", "approve", assessment_digest=old.digest)
        assert new.digest in str(stale.value.cause)
        await handle.terminate("test over")


async def test_a_failed_gate_goes_back_to_remediation_a_bounded_number_of_times(
    audit_env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    registered: ModelManifest,
) -> None:
    incident = incident_input(router_service, load_playbook_text(_playbook(IMPOSSIBLE)))
    incident.model = registered
    queue = _queue()
    async with running_worker(audit_env.client, trail, router_service, queue):
        handle = await start_incident(audit_env.client, incident, queue)
        final = await handle.result()

    assert final.phase is Phase.FAILED
    assert final.outcome is not None and "goto exhausted after 1" in final.outcome
    assert [s.name for s in final.steps if s.kind == "sandbox_validate"] == ["validate", "validate"]
    assert final.findings.remediation_rounds == 2


async def test_a_missing_data_file_is_a_typed_failure_in_the_trail(
    audit_env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
    registered: ModelManifest,
) -> None:
    broken = registered.model_copy(deep=True)
    broken.versions[0].training_data = "/nonexistent/training.csv"
    incident = incident_input(router_service, load_playbook_text(_playbook(LOOSE)))
    incident.model = broken
    queue = _queue()
    async with running_worker(audit_env.client, trail, router_service, queue):
        handle = await start_incident(audit_env.client, incident, queue)
        final = await handle.result()

    assert final.phase is Phase.FAILED
    assert final.outcome is not None and "DataFileError" in final.outcome
    failed = [r for r in trail.records(incident.incident_id) if r.kind == "activity.failed"]
    assert failed and failed[0].attempt == 1
    assert "does not exist" in failed[0].detail

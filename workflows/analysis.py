"""The audit, remediation, validation and assessment steps, as the workflow runs them.

Deterministic: each step is one activity (two audits at once for `parallel`), and
what the workflow decides from the results (which proxies are confirmed, whether the
gates passed) is computed from those results alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.analysis import (
        ATTRIBUTION_AUDIT,
        IMPACT_ASSESSMENT,
        PROVENANCE_AUDIT,
        REMEDIATE,
        REMEDIATE_EXTERNAL,
        SANDBOX_VALIDATE,
        Assessment,
        AssessmentInput,
        AttributionFindings,
        AttributionInput,
        Candidate,
        Findings,
        ProvenanceFindings,
        ProvenanceInput,
        RemediateInput,
        ValidateInput,
        Validation,
    )
    from contracts.incident import IncidentInput
    from playbooks.steps import (
        AttributionAuditStep,
        ImpactAssessmentStep,
        ParallelAuditsStep,
        ProvenanceAuditStep,
        RemediateStep,
        SandboxValidateStep,
    )
    from workflows.options import step_options, without_heartbeat


class GateFailure(Exception):
    """The candidate did not pass the sandbox gates (or could not be judged)."""


class AnalysisSteps:
    def __init__(
        self,
        incident: IncidentInput,
        findings: Findings,
        activity_id: Callable[[str], str],
    ) -> None:
        self._incident = incident
        self._findings = findings
        self._activity_id = activity_id

    async def provenance(self, step: ProvenanceAuditStep) -> str:
        findings: ProvenanceFindings = await workflow.execute_activity(
            PROVENANCE_AUDIT,
            ProvenanceInput(
                incident_id=self._incident.incident_id, model=self._incident.model, step=step
            ),
            result_type=ProvenanceFindings,
            activity_id=self._activity_id(step.name),
            **step_options(step),
        )
        self._findings.provenance = findings
        self._confirm_proxies()
        return findings.headline

    async def attribution(self, step: AttributionAuditStep) -> str:
        suspected = self._findings.provenance.suspected_proxies if self._findings.provenance else []
        findings: AttributionFindings = await workflow.execute_activity(
            ATTRIBUTION_AUDIT,
            AttributionInput(
                incident_id=self._incident.incident_id,
                model=self._incident.model,
                step=step,
                suspected_proxies=suspected,
            ),
            result_type=AttributionFindings,
            activity_id=self._activity_id(step.name),
            **step_options(step),
        )
        self._findings.attribution = findings
        self._confirm_proxies()
        return findings.headline

    async def parallel(self, step: ParallelAuditsStep) -> str:
        headlines = await asyncio.gather(
            *(
                self.provenance(sub)
                if isinstance(sub, ProvenanceAuditStep)
                else self.attribution(sub)
                for sub in step.steps
            )
        )
        confirmed = ", ".join(self._findings.confirmed_proxies) or "none"
        return " | ".join([*headlines, f"confirmed proxies: {confirmed}"])

    async def remediate(self, step: RemediateStep) -> str:
        self._findings.remediation_rounds += 1
        provenance = self._findings.provenance
        request = RemediateInput(
            incident_id=self._incident.incident_id,
            model=self._incident.model,
            step=step,
            round=self._findings.remediation_rounds,
            confirmed_proxies=self._findings.confirmed_proxies,
            suspected_proxies=provenance.suspected_proxies if provenance else [],
        )
        external = any(strategy.name == "external" for strategy in step.strategies)
        options = step_options(step)
        if external:  # the training pipeline may answer hours later, without heartbeats
            options = without_heartbeat(options, step.external_timeout)
        candidate: Candidate = await workflow.execute_activity(
            REMEDIATE_EXTERNAL if external else REMEDIATE,
            request,
            result_type=Candidate,
            activity_id=self._activity_id(step.name),
            **options,
        )
        self._findings.candidate = candidate
        self._findings.validation = None
        self._findings.assessment = None
        return candidate.headline

    async def validate(self, step: SandboxValidateStep) -> str:
        candidate = self._findings.candidate
        if candidate is None:
            raise GateFailure("no candidate to validate: a remediate step must come first")
        validation: Validation = await workflow.execute_activity(
            SANDBOX_VALIDATE,
            ValidateInput(
                incident_id=self._incident.incident_id,
                model=self._incident.model,
                candidate=candidate,
                gates=step.gates,
                proxies=self._proxies(),
            ),
            result_type=Validation,
            activity_id=self._activity_id(step.name),
            **step_options(step),
        )
        self._findings.validation = validation
        if validation.verdict != "pass":
            failed = ", ".join(validation.failed_gates) or "no gate failed outright"
            raise GateFailure(f"candidate {candidate.version} {validation.verdict}: {failed}")
        return validation.headline

    async def assess(self, step: ImpactAssessmentStep) -> str:
        assessment: Assessment = await workflow.execute_activity(
            IMPACT_ASSESSMENT,
            AssessmentInput(
                incident_id=self._incident.incident_id,
                model=self._incident.model,
                step=step,
                summary=self._incident.summary,
                findings=self._findings,
            ),
            result_type=Assessment,
            activity_id=self._activity_id(step.name),
            **step_options(step),
        )
        self._findings.assessment = assessment
        return f"{assessment.headline} ({assessment.digest})"

    def _confirm_proxies(self) -> None:
        """A suspected proxy that is also a top driver of the gap is a confirmed proxy."""
        provenance, attribution = self._findings.provenance, self._findings.attribution
        if provenance is None or attribution is None:
            return
        suspected = set(provenance.suspected_proxies)
        self._findings.confirmed_proxies = [f for f in attribution.gap_drivers if f in suspected]

    def _proxies(self) -> list[str]:
        provenance = self._findings.provenance
        suspected = provenance.suspected_proxies if provenance else []
        return list(dict.fromkeys([*self._findings.confirmed_proxies, *suspected]))

"""What the report draws on: the incident's state and the full reports its findings name.

Each report file is read back only if it still hashes to the digest the incident
recorded (``analysis.reports.read_report``), so a table is never drawn from a file
changed after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.attribution import AttributionReport
from analysis.provenance import ProvenanceReport
from analysis.remediation import RemediationResult
from analysis.reports import read_report
from analysis.validation import ValidationReport
from contracts.incident import IncidentState


@dataclass(frozen=True)
class Evidence:
    state: IncidentState
    provenance: ProvenanceReport | None
    attribution: AttributionReport | None
    remediation: RemediationResult | None
    validation: ValidationReport | None


def gather_evidence(state: IncidentState) -> Evidence:
    """Read every report the findings reference; ValueError if one was altered."""
    f = state.findings
    return Evidence(
        state=state,
        provenance=ProvenanceReport.model_validate(read_report(f.provenance.report))
        if f.provenance
        else None,
        attribution=AttributionReport.model_validate(read_report(f.attribution.report))
        if f.attribution
        else None,
        remediation=RemediationResult.model_validate(read_report(f.candidate.report))
        if f.candidate and f.candidate.report
        else None,
        validation=ValidationReport.model_validate(read_report(f.validation.report))
        if f.validation
        else None,
    )

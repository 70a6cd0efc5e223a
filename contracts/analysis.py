"""What the audit, remediation, validation and assessment steps hand back to the workflow.

Full reports can be large, so they are written to files (content-addressed by the
sha256 of their bytes) and the workflow carries only their summaries and references:
its history stays small, and an auditor can check a report has not changed since.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from contracts.fallback_window import FallbackWindow
from contracts.model import SHA256_PATTERN, ArtifactName, ModelManifest, VersionName
from contracts.playbook.steps import (
    AttributionAuditStep,
    Gates,
    ImpactAssessmentStep,
    ProvenanceAuditStep,
    RemediateStep,
)

PROVENANCE_AUDIT = "provenance_audit"
ATTRIBUTION_AUDIT = "attribution_audit"
REMEDIATE = "remediate"
REMEDIATE_EXTERNAL = "remediate_external"
SANDBOX_VALIDATE = "sandbox_validate"
IMPACT_ASSESSMENT = "impact_assessment"


class ReportRef(BaseModel):
    path: str
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class ProvenanceFindings(BaseModel):
    report: ReportRef
    rows: int
    suspected_proxies: list[str]
    too_small_groups: list[str]
    headline: str


class AttributionFindings(BaseModel):
    report: ReportRef
    explainer: str
    sample_size: int
    gap_drivers: list[str] = Field(description="most to least, the top_k")
    headline: str


class Candidate(BaseModel):
    report: ReportRef | None = Field(description="None when an external pipeline trained it")
    version: str
    artifact: str  # its name in the artifacts directory
    sha256: str | None = None  # the digest the registry recorded for it
    strategy: str
    headline: str


class Validation(BaseModel):
    report: ReportRef
    verdict: Literal["pass", "fail", "inconclusive"]
    failed_gates: list[str]
    headline: str


class Assessment(BaseModel):
    """The written assessment: ``digest`` (of the Markdown) is what sign-offs bind to;
    ``html_digest`` lets the HTML rendering be checked before it is served too (``None``
    for assessments written before it was recorded: their HTML is not served)."""

    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    markdown: str
    html: str
    headline: str
    html_digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")


class Findings(BaseModel):
    """Everything the incident has learned so far; the latest of each kind."""

    provenance: ProvenanceFindings | None = None
    attribution: AttributionFindings | None = None
    confirmed_proxies: list[str] = Field(default_factory=list)
    candidate: Candidate | None = None
    validation: Validation | None = None
    assessment: Assessment | None = None
    remediation_rounds: int = 0
    fallback_window: FallbackWindow | None = Field(
        default=None,
        description="the fallback's live decisions while it served, as of the latest "
        "impact assessment",
    )


class ProvenanceInput(BaseModel):
    incident_id: str
    model: ModelManifest
    step: ProvenanceAuditStep


class AttributionInput(BaseModel):
    incident_id: str
    model: ModelManifest
    step: AttributionAuditStep
    suspected_proxies: list[str] = Field(default_factory=list)


class RemediateInput(BaseModel):
    incident_id: str
    model: ModelManifest
    step: RemediateStep
    round: int = Field(ge=1)
    confirmed_proxies: list[str]
    suspected_proxies: list[str]


class ValidateInput(BaseModel):
    incident_id: str
    model: ModelManifest
    candidate: Candidate
    gates: Gates
    proxies: list[str]


class TrainingJob(BaseModel):
    """What an external training pipeline receives; it answers at ``callback_url``."""

    incident_id: str
    model: str
    parent_version: str
    training_data: str | None
    validation_data: str | None
    protected_attributes: list[str]
    confirmed_proxies: list[str]
    suspected_proxies: list[str]
    round: int
    callback_url: str


class TrainingResult(BaseModel):
    """The pipeline's answer: where the candidate it trained is, and how it was made.

    ``artifact`` names a file the pipeline wrote into the artifacts directory (as skops);
    the registry records its sha256, and checks ``sha256`` if the pipeline gives one.
    """

    version: VersionName
    artifact: ArtifactName
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    strategy: str = Field(default="external", max_length=200)
    summary: str = Field(default="", max_length=4000)


class AssessmentInput(BaseModel):
    incident_id: str
    model: ModelManifest
    step: ImpactAssessmentStep
    summary: str
    findings: Findings

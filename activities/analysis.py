"""The audit, remediation, validation and assessment steps' side effects.

Each activity reads the model's registered data and artifacts, runs its engine from
`analysis/` in a worker thread while heartbeating, writes the full report as a
content-addressed file under ``data_dir/incidents/<id>/`` and returns a summary. A
problem no retry can fix (a missing data file or column, a model file that does not
load) is a typed, non-retryable failure with the reason, which the audit trail keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pandas as pd
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import Progress, run_with_heartbeat
from analysis.assessment import write_assessment
from analysis.attribution import AttributionReport, attribution_audit
from analysis.columns import ModelColumns
from analysis.data import DataFileError, read_table
from analysis.models import ModelFileError, Outcome, load_artifact
from analysis.provenance import ProvenanceReport, provenance_audit
from analysis.remediation import RemediationInputError, RemediationResult, remediate
from analysis.reports import write_report
from analysis.validation import ValidationReport, scorer_from_artifact, validate_candidate
from contracts.analysis import (
    ATTRIBUTION_AUDIT,
    IMPACT_ASSESSMENT,
    PROVENANCE_AUDIT,
    REMEDIATE,
    SANDBOX_VALIDATE,
    Assessment,
    AssessmentInput,
    AttributionFindings,
    AttributionInput,
    Candidate,
    ProvenanceFindings,
    ProvenanceInput,
    RemediateInput,
    ValidateInput,
    Validation,
)
from contracts.model import ModelManifest, ModelVersion
from fairness.proxy import ProxyThresholds
from registry.service import ModelRegistry
from store.artifacts import ArtifactError, ArtifactStore
from store.paths import PathEscape, check_slug, under

T = TypeVar("T")
_UNFIXABLE: tuple[type[Exception], ...] = (
    DataFileError,
    ModelFileError,
    RemediationInputError,
    ArtifactError,
    PathEscape,
)


@contextmanager
def typed_failures() -> Iterator[None]:
    """Turn problems that retrying cannot fix into non-retryable, typed failures."""
    try:
        yield
    except _UNFIXABLE as error:
        raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from error


def _needed(value: str | None, what: str, model: ModelManifest) -> str:
    if not value:
        raise ApplicationError(
            f"model {model.id} has no {what} in its manifest",
            type="ManifestIncomplete",
            non_retryable=True,
        )
    return value


def selection_half(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows remediation may look at when choosing a candidate (every other row)."""
    return frame.iloc[::2]


def held_out_half(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows the sandbox judges the chosen candidate on: never seen while choosing it."""
    return frame.iloc[1::2]


def _explained_outcome(model: ModelManifest) -> Outcome:
    """What an attribution step that names no outcome explains: the amount when the model
    sets one (where a gap in money shows), else its decision."""
    return "amount" if model.outcomes.amount is not None else "decision"


def _outcomes(model: ModelManifest) -> list[Outcome]:
    """The outcomes the manifest declares, which the models compared must produce."""
    declared: list[Outcome] = []
    if model.outcomes.decision is not None:
        declared.append("decision")
    if model.outcomes.amount is not None:
        declared.append("amount")
    return declared


class AnalysisActivities:
    """The analysis steps; they open artifacts only through ``artifacts`` (by name, at the
    registered digest) and write only under ``data_dir`` (paths built by ``store.paths``)."""

    def __init__(self, data_dir: Path, registry: ModelRegistry, artifacts: ArtifactStore) -> None:
        self._data_dir = data_dir
        self._registry = registry
        self._artifacts = artifacts

    def _folder(self, incident_id: str) -> Path:
        with typed_failures():
            return under(self._data_dir, "incidents", incident_id)

    async def _compute(self, work: Callable[[Progress], T]) -> T:
        with typed_failures():
            return await run_with_heartbeat(work)

    @activity.defn(name=PROVENANCE_AUDIT)
    async def provenance_audit(self, request: ProvenanceInput) -> ProvenanceFindings:
        model, step = request.model, request.step
        data = _needed(model.version(model.primary_version).training_data, "training_data", model)

        # Outcomes the model produces are not inputs that could smuggle the attribute in.
        outcomes = {model.label, model.outcomes.decision, model.outcomes.amount}

        def work(progress: Progress) -> ProvenanceReport:
            frame = read_table(data)
            return provenance_audit(
                frame.drop(columns=[c for c in frame.columns if c in outcomes - {model.label}]),
                protected=model.protected_attributes,
                label=model.label,
                min_group_size=step.min_group_size,
                reference=step.reference_population,
                thresholds=ProxyThresholds(nmi=step.proxy_nmi, auc=step.proxy_auc),
                progress=progress,
            )

        report = await self._compute(work)
        ref = write_report(self._folder(request.incident_id), step.name, report)
        return ProvenanceFindings(
            report=ref,
            rows=report.rows,
            suspected_proxies=report.suspected_proxies,
            too_small_groups=[g for s in report.representation.slices for g in s.too_small],
            headline=report.headline,
        )

    @activity.defn(name=ATTRIBUTION_AUDIT)
    async def attribution_audit(self, request: AttributionInput) -> AttributionFindings:
        model, step = request.model, request.step
        version = model.version(model.primary_version)
        data = _needed(version.validation_data, "validation_data", model)

        def work(progress: Progress) -> AttributionReport:
            return attribution_audit(
                load_artifact(self._artifacts, version.artifact, version.sha256),
                read_table(data),
                protected=model.protected_attributes,
                outcome=step.outcome or _explained_outcome(model),
                sample_size=step.sample_size,
                suspected_proxies=request.suspected_proxies,
                top_k=step.top_k,
                progress=progress,
            )

        report = await self._compute(work)
        ref = write_report(self._folder(request.incident_id), step.name, report)
        drivers = [f for gap in report.gaps for f in gap.top_drivers]
        return AttributionFindings(
            report=ref,
            explainer=report.explainer.name,
            sample_size=report.rows,
            gap_drivers=list(dict.fromkeys(drivers)),
            headline=report.headline,
        )

    @activity.defn(name=REMEDIATE)
    async def remediate(self, request: RemediateInput) -> Candidate:
        model, step = request.model, request.step
        parent = model.version(model.primary_version)
        training = _needed(parent.training_data, "training_data", model)
        validation = _needed(parent.validation_data, "validation_data", model)
        version = f"{parent.version}-fair-{request.incident_id[-8:]}-r{request.round}"
        with typed_failures():
            check_slug(version, "candidate version")

        def work(progress: Progress) -> RemediationResult:
            return remediate(
                read_table(training),
                selection_half(read_table(validation)),
                load_artifact(self._artifacts, parent.artifact, parent.sha256),
                columns=ModelColumns.of(model),
                confirmed_proxies=request.confirmed_proxies,
                suspected_proxies=request.suspected_proxies,
                strategies=step.strategies,
                max_accuracy_loss=step.max_accuracy_loss,
                version=version,
                store=self._artifacts,
                output=(model.id, f"{version}.skops"),
                incident_id=request.incident_id,
                parent_version=parent.version,
                progress=progress,
            )

        result = await self._compute(work)
        ref = write_report(self._folder(request.incident_id), step.name, result)
        if result.lineage is None or result.artifact is None or result.chosen is None:
            raise ApplicationError(
                f"no strategy produced a deployable candidate: {result.headline}",
                type="NoCandidate",
                non_retryable=True,
            )
        self._registry.add_version(
            model.id,
            ModelVersion(
                version=version,
                artifact=result.artifact,
                sha256=result.artifact_sha256,
                training_data=parent.training_data,
                validation_data=parent.validation_data,
                lineage=result.lineage,
            ),
            registered_by=f"fairlane:{request.incident_id}",
        )
        return Candidate(
            report=ref,
            version=version,
            artifact=result.artifact,
            sha256=result.artifact_sha256,
            strategy=result.chosen.name,
            headline=result.headline,
        )

    @activity.defn(name=SANDBOX_VALIDATE)
    async def sandbox_validate(self, request: ValidateInput) -> Validation:
        model = request.model
        baseline = model.version(model.primary_version)
        data = _needed(baseline.validation_data, "validation_data", model)

        needs = _outcomes(model)

        def work(progress: Progress) -> ValidationReport:
            progress("scoring baseline and candidate")
            candidate = request.candidate
            return validate_candidate(
                held_out_half(read_table(data)),
                scorer_from_artifact(
                    self._artifacts, baseline.artifact, baseline.sha256, needs=needs
                ),
                scorer_from_artifact(
                    self._artifacts, candidate.artifact, candidate.sha256, needs=needs
                ),
                columns=ModelColumns.of(model),
                proxies=request.proxies,
                gates=request.gates,
                seed=0,
            )

        report = await self._compute(work)
        ref = write_report(self._folder(request.incident_id), "sandbox-validate", report)
        gates = report.gate_report
        failed = [
            f"{r.gate.value}{f' ({r.slicing})' if r.slicing else ''}: {r.reason}"
            for r in gates.results
            if r.verdict.value != "pass"
        ]
        return Validation(
            report=ref,
            verdict=gates.verdict.value,
            failed_gates=failed,
            headline=report.headline,
        )

    @activity.defn(name=IMPACT_ASSESSMENT)
    async def impact_assessment(self, request: AssessmentInput) -> Assessment:
        folder = self._folder(request.incident_id)
        return await self._compute(lambda progress: write_assessment(request, folder))

"""The whole regulator's report, as a :class:`~reports.document.Document`.

Built from the incident's state and the structured reports its findings reference,
never by parsing the Markdown: the Markdown is what approvers signed (its digest is
the assessment's), and this document names that digest and the file of record.
"""

from __future__ import annotations

from contracts.analysis import Assessment
from reports.complaint import complaint_section, strata_section
from reports.document import Document, Section, Table
from reports.evidence import Evidence
from reports.formatting import MISSING, counts, interval, moment, number


def assessment_document(evidence: Evidence, assessment: Assessment) -> Document:
    state = evidence.state
    return Document(
        title=f"Algorithmic Impact Assessment — {state.model}",
        facts=[
            ("Incident", state.incident_id),
            ("Model", state.model),
            ("Severity", state.severity.value),
            ("Phase", state.phase.value),
            ("Opened", f"{moment(state.opened_at)} by {state.commander}"),
            ("Playbook", f"{state.playbook}@{state.playbook_version}"),
            ("Assessment", assessment.headline),
            ("Document of record", "the Markdown assessment the approvers signed"),
            ("Its digest", assessment.digest),
        ],
        sections=[
            complaint_section(evidence),
            strata_section(evidence),
            proxy_section(evidence),
            affected_section(evidence),
            remediation_section(evidence),
            signoff_section(evidence),
        ],
    )


def proxy_section(evidence: Evidence) -> Section:
    section = Section(title="3. Proxy evidence and the attribution gap")
    provenance = evidence.provenance
    if provenance is None:
        section.paragraphs.append("No provenance audit ran in this incident.")
    else:
        scan = provenance.proxies
        section.paragraphs.append(
            f"Training data: {provenance.rows:,} rows. A feature is a suspected proxy when its "
            f"normalised mutual information with a protected attribute reaches "
            f"{scan.thresholds.nmi} or its single-feature AUC reaches {scan.thresholds.auc} "
            f"(cross-validated, {scan.cv_folds} folds). Suspected: "
            f"{', '.join(scan.suspected_proxies) or 'none'}."
        )
        for attribute in scan.attributes:
            section.tables.append(
                Table(
                    caption=f"Features against {attribute.attribute}: {attribute.rows:,} rows "
                    f"(AUC on {attribute.auc_rows:,} rows of {', '.join(attribute.auc_classes)})",
                    columns=["feature", "kind", "NMI", "Cramér's V", "AUC", "suspected"],
                    rows=[
                        [
                            f.feature,
                            f.kind,
                            number(f.nmi),
                            number(f.cramers_v),
                            number(f.auc),
                            "yes" if f.suspected else "no",
                        ]
                        for f in attribute.features
                    ],
                )
            )
    attribution = evidence.attribution
    if attribution is None:
        section.paragraphs.append("No attribution audit ran in this incident.")
        return section
    section.paragraphs.append(
        f"Attribution by {attribution.explainer.name} over {attribution.explainer.rows:,} rows: "
        f"{attribution.headline}"
    )
    section.tables.append(
        Table(
            caption="The gap between groups in the model's output, and what drives it",
            columns=["attribute", "group vs reference", "rows", "gap", "drivers (share)"],
            rows=[
                [
                    gap.attribute,
                    f"{gap.group} vs {gap.reference_group}",
                    counts({gap.group: gap.group_rows, gap.reference_group: gap.reference_rows}),
                    f"{gap.gap:+.3f}",
                    "; ".join(
                        f"{d.feature} {d.contribution:+.3f} ({number(d.share, True)})"
                        for d in gap.drivers[:3]
                    )
                    or MISSING,
                ]
                for gap in attribution.gaps
            ],
        )
    )
    return section


def affected_section(evidence: Evidence) -> Section:
    """How many decisions the biased model made, from the decision source's window."""
    section = Section(title="4. Decisions affected while the biased model served")
    trigger = evidence.state.trigger
    look = trigger.evaluation if trigger is not None else None
    if look is None:
        section.paragraphs.append(
            "This incident was not opened by a monitor, so no window of live decisions is on "
            "record with it; the decision source can be queried for the period before "
            f"containment ({moment(evidence.state.opened_at)})."
        )
    else:
        section.paragraphs.append(
            f"{look.decisions:,} live decisions between {moment(look.since)} and "
            f"{moment(look.until)}, read from {look.provider}. The decision source counts "
            "decisions, not people: a person who applied twice is counted twice."
        )
        section.tables.append(
            Table(
                caption="Live decisions in the window, by group",
                columns=["served by", "group", "decisions"],
                rows=[
                    [side, group, f"{n:,}"]
                    for side, groups in look.fairness.samples.items()
                    for group, n in groups.items()
                ],
            )
        )
    if evidence.validation is not None:
        section.paragraphs.append(
            f"Held-out evidence: {evidence.validation.rows:,} rows scored by both models."
        )
    return section


def remediation_section(evidence: Evidence) -> Section:
    section = Section(title="5. The remediation trade-off")
    candidate = evidence.state.findings.candidate
    remediation = evidence.remediation
    if candidate is None:
        section.paragraphs.append("No candidate was produced.")
        return section
    section.paragraphs.append(
        f"Candidate {candidate.version} by {candidate.strategy}: {candidate.headline}"
    )
    if remediation is not None:
        section.paragraphs.append(f"Selection rule: {remediation.selection}")
        section.tables.append(
            Table(
                caption="Every strategy tried: accuracy against fairness",
                columns=[
                    "candidate",
                    "accuracy",
                    "loss",
                    "approval ratio",
                    "amount gap",
                    "deployable",
                ],
                rows=[
                    [
                        p.name,
                        number(p.accuracy),
                        f"{p.accuracy_loss:+.3f}",
                        number(p.disparate_impact_ratio),
                        number(p.amount_disparity, True),
                        "yes" if p.deployable else f"no: {p.not_deployable_reason or ''}",
                    ]
                    for p in remediation.points
                ],
            )
        )
    validation = evidence.validation
    if validation is not None:
        section.paragraphs.append(
            f"Accuracy cost on held-out data: {number(_estimate(validation.accuracy_loss))} "
            f"{interval(validation.accuracy_loss)}. Sandbox verdict: "
            f"{validation.gate_report.verdict.value}."
        )
        section.tables.append(
            Table(
                caption="Sandbox gates",
                columns=["gate", "slicing", "verdict", "estimate", "threshold"],
                rows=[
                    [
                        r.gate.value,
                        r.slicing or "all",
                        r.verdict.value,
                        number(r.estimate),
                        number(r.threshold),
                    ]
                    for r in validation.gate_report.results
                ],
            )
        )
    return section


def _estimate(value: object) -> float | None:
    return getattr(value, "estimate", None)


def signoff_section(evidence: Evidence) -> Section:
    section = Section(title="6. The sign-off record")
    status = evidence.state.signoff
    if status is None:
        section.paragraphs.append("No sign-off has been asked for yet.")
        return section
    bound = status.assessment_digest
    section.paragraphs.append(
        f"{status.subject}: {status.outcome} (deadline {moment(status.deadline)}). "
        + (
            f"Every decision below names assessment {bound}."
            if bound
            else "This sign-off was not bound to an assessment digest."
        )
    )
    section.tables.append(
        Table(
            caption="Who decided, as what, when, and on which document",
            columns=["approver", "role", "decision", "time (UTC)", "comment", "digest approved"],
            rows=[
                [
                    vote.principal,
                    role.role,
                    vote.decision,
                    moment(vote.at),
                    vote.comment or MISSING,
                    bound or MISSING,
                ]
                for role in status.roles
                for vote in role.votes
            ]
            + [
                [
                    MISSING,
                    role.role,
                    f"pending ({len(role.votes)}/{role.quorum})",
                    MISSING,
                    MISSING,
                    MISSING,
                ]
                for role in status.roles
                if role.outcome == "pending"
            ],
        )
    )
    return section

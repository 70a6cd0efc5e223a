"""The Algorithmic Impact Assessment: Markdown (the signed text) and HTML with plots.

Written from the incident's findings and the full reports they reference (each read
back only if it still matches its digest). The Markdown is the document of record:
its sha256 is the assessment's digest, which sign-offs bind to; the HTML is the same
content with the plots embedded, for reading. Plots use matplotlib's object API (no
pyplot global state), so assessments can be written from worker threads.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.figure import Figure

from analysis.attribution import AttributionReport
from analysis.remediation import RemediationResult
from analysis.reports import read_report, sha256_ref
from analysis.validation import ValidationReport
from contracts.analysis import Assessment, AssessmentInput
from contracts.fallback_window import FallbackWindow
from fairness.group_metrics import SlicingMetrics
from fairness.intervals import Interval
from store.paths import under


def write_assessment(request: AssessmentInput, folder: Path) -> Assessment:
    findings = request.findings
    attribution = (
        AttributionReport.model_validate(read_report(findings.attribution.report))
        if findings.attribution
        else None
    )
    remediation = (
        RemediationResult.model_validate(read_report(findings.candidate.report))
        if findings.candidate and findings.candidate.report
        else None
    )
    validation = (
        ValidationReport.model_validate(read_report(findings.validation.report))
        if findings.validation
        else None
    )
    plots: dict[str, bytes] = {}
    if validation is not None:
        plots["parity"] = _parity_plot(validation)
    if remediation is not None:
        plots["tradeoffs"] = _tradeoff_plot(remediation)
    if attribution is not None:
        plots["attribution"] = _attribution_plot(attribution)

    sections = [
        _header(request),
        _mechanism(request, attribution),
        _evidence(request, attribution),
        _remediation(request, remediation),
        _parity(validation),
        _risks(request, validation, remediation),
    ]
    markdown = "\n\n".join(s for s in sections if s) + "\n"
    for name in plots:
        markdown += f"\n![{name}]({name}.png)\n"
    content = markdown.encode()
    digest = sha256_ref(content)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"impact-assessment-{digest[7:19]}"
    md_path = under(folder, f"{stem}.md")
    md_path.write_bytes(content)
    for name, png in plots.items():
        under(folder, f"{name}.png").write_bytes(png)
    html_path = under(folder, f"{stem}.html")
    html_content = _html(markdown, plots, digest).encode()
    html_path.write_bytes(html_content)
    verdict = findings.validation.verdict if findings.validation else "not validated"
    candidate = findings.candidate.version if findings.candidate else "no candidate"
    return Assessment(
        digest=digest,
        markdown=str(md_path),
        html=str(html_path),
        headline=f"impact assessment for {candidate} (sandbox: {verdict})",
        html_digest=sha256_ref(html_content),
    )


def _header(request: AssessmentInput) -> str:
    return "\n".join(
        [
            f"# Algorithmic Impact Assessment — {request.model.id}",
            "",
            f"- Incident: `{request.incident_id}`",
            f"- Model: `{request.model.id}`, serving version `{request.model.primary_version}`",
            f"- Protected attributes: {', '.join(request.model.protected_attributes)}",
            f"- Strata: {', '.join(request.model.strata) or 'none'}",
            f"- Written: {datetime.now(UTC).isoformat(timespec='seconds')}",
            f"- Reported problem: {request.summary}",
        ]
    )


def _mechanism(request: AssessmentInput, attribution: AttributionReport | None) -> str:
    f = request.findings
    lines = ["## 1. Failure mechanism"]
    if f.provenance:
        lines.append(f"- Training data: {f.provenance.headline}")
    if attribution:
        lines.append(f"- Attribution ({attribution.explainer.name}): {attribution.headline}")
        lines.append(f"- Output scale: {attribution.scale.note}")
    confirmed = ", ".join(f"`{p}`" for p in f.confirmed_proxies) or "none"
    lines.append(
        f"- Confirmed proxies (suspected in the data and top drivers of the gap): {confirmed}"
    )
    return "\n".join(lines)


def _evidence(request: AssessmentInput, attribution: AttributionReport | None) -> str:
    f = request.findings
    lines = ["## 2. Evidence"]
    window = f.fallback_window
    if window is not None:
        lines.append(f"- During containment, the fallback: {_fallback_line(window)}")
    if f.provenance:
        lines += [
            f"- Provenance report `{f.provenance.report.digest}` over {f.provenance.rows} rows",
            f"- Suspected proxies: {', '.join(f.provenance.suspected_proxies) or 'none'}",
            f"- Groups too small to judge: {', '.join(f.provenance.too_small_groups) or 'none'}",
        ]
    if attribution:
        lines += ["", "| feature | mean \\|SHAP\\| |", "|---|---|"]
        lines += [f"| {a.feature} | {a.mean_abs_shap:.4f} |" for a in attribution.features[:8]]
        for gap in attribution.gaps[:3]:
            drivers = ", ".join(f"{d.feature} {d.contribution:+.3f}" for d in gap.drivers[:3])
            lines.append(
                f"\n- {gap.attribute}={gap.group} vs {gap.reference_group}: gap {gap.gap:+.3f} "
                f"({drivers})"
            )
    return "\n".join(lines)


def _fallback_line(window: FallbackWindow) -> str:
    """What the fallback decided while it served, in one line (the tables are the report's)."""
    span = ""
    if window.since is not None and window.until is not None:
        span = f" from {window.since:%Y-%m-%d %H:%M} to {window.until:%Y-%m-%d %H:%M} UTC"
    if window.analysis is None:
        return f"no numbers{span}: {window.unavailable or 'no decision to judge'}"
    return (
        f"{window.decisions:,} live decisions{span} ({window.provider}): {window.analysis.headline}"
    )


def _remediation(request: AssessmentInput, remediation: RemediationResult | None) -> str:
    candidate = request.findings.candidate
    if candidate is None:
        return "## 3. Remediation\n\nNo candidate was produced."
    lines = [
        "## 3. Remediation",
        f"- Candidate `{candidate.version}` by `{candidate.strategy}`: {candidate.headline}",
        f"- Remediation rounds so far: {request.findings.remediation_rounds}",
    ]
    if remediation:
        lines += [
            f"- Selection rule: {remediation.selection}",
            "",
            "| candidate | accuracy | loss | DI ratio | conditional amount gap | deployable |",
            "|---|---|---|---|---|---|",
        ]
        for p in remediation.points:
            gap = f"{p.amount_disparity:.1%}" if p.amount_disparity is not None else "—"
            ratio = (
                f"{p.disparate_impact_ratio:.3f}" if p.disparate_impact_ratio is not None else "—"
            )
            lines.append(
                f"| {p.name} | {p.accuracy:.3f} | {p.accuracy_loss:+.3f} | "
                f"{ratio} | {gap} | {'yes' if p.deployable else 'no'} |"
            )
    return "\n".join(lines)


def _fmt(interval: Interval | None, percent: bool = False) -> str:
    if interval is None:
        return "—"
    f = "{:.1%}" if percent else "{:.3f}"
    return f"{f.format(interval.estimate)} [{f.format(interval.lower)}, {f.format(interval.upper)}]"


def _aggregates(slicing: SlicingMetrics) -> Iterable[tuple[str, str, bool]]:
    yield "disparate-impact ratio", _fmt(_iv(slicing.disparate_impact_ratio)), False
    yield "equalized-odds difference", _fmt(_iv(slicing.equalized_odds_difference)), False
    yield "group mean ratio (amount)", _fmt(_iv(slicing.group_mean_ratio)), False
    yield (
        "conditional amount disparity",
        _fmt(_iv(slicing.conditional_amount_disparity), True),
        True,
    )


def _iv(disparity: object) -> Interval | None:
    return getattr(disparity, "interval", None)


def _parity(validation: ValidationReport | None) -> str:
    if validation is None:
        return "## 4. Parity before and after\n\nThe candidate was not validated."
    lines = [
        "## 4. Parity before and after (held-out data)",
        f"{validation.headline}",
        "",
        f"Intervals at family-wise alpha {validation.gates.alpha} "
        f"({validation.baseline.held_out.comparisons} comparisons, Bonferroni).",
    ]
    for before, after in zip(
        validation.baseline.held_out.slicings, validation.candidate.held_out.slicings, strict=True
    ):
        lines += ["", f"### {before.name}", "", "| metric | before | after |", "|---|---|---|"]
        for (name, old, _), (_, new, _) in zip(
            _aggregates(before), _aggregates(after), strict=True
        ):
            lines.append(f"| {name} | {old} | {new} |")
    loss = _fmt(validation.accuracy_loss)
    lines += ["", f"Accuracy cost (baseline - candidate): {loss}", "", "### Gates", ""]
    for r in validation.gate_report.results:
        lines.append(f"- **{r.verdict.value}** — {r.reason}")
    return "\n".join(lines)


def _risks(
    request: AssessmentInput,
    validation: ValidationReport | None,
    remediation: RemediationResult | None,
) -> str:
    lines = ["## 5. Residual risks"]
    if validation is not None:
        cf = validation.candidate.counterfactual
        lines.append(
            f"- Counterfactual twins (protected attribute and proxies swapped): decisions flip for "
            f"{_fmt(cf.flip_rate, True)} of {cf.pairs} pairs"
        )
        for slicing in validation.candidate.held_out.slicings:
            small = [g.group for g in slicing.groups if g.status.value == "inconclusive"]
            if small:
                lines.append(f"- {slicing.name}: too few rows to judge {', '.join(small)}")
    if remediation is not None:
        for name, why in remediation.not_applicable.items():
            lines.append(f"- Strategy {name} did not apply: {why}")
        for p in remediation.points:
            if not p.deployable and p.not_deployable_reason:
                lines.append(f"- {p.name} not deployable: {p.not_deployable_reason}")
    lines.append(
        "- Monitoring after promotion is required: parity on held-out data is not parity in "
        "production traffic."
    )
    return "\n".join(lines)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _parity_plot(validation: ValidationReport) -> bytes:
    before = validation.baseline.held_out.slicings[0]
    after = validation.candidate.held_out.slicings[0]
    figure = Figure(figsize=(6, 3.5))
    ax = figure.subplots()
    for offset, (label, slicing) in enumerate((("before", before), ("after", after))):
        for i, group in enumerate(slicing.groups):
            rate = group.selection_rate
            if rate is None or rate.interval is None:
                continue
            iv = rate.interval
            ax.errorbar(
                i + offset * 0.2,
                iv.estimate,
                yerr=[[iv.estimate - iv.lower], [iv.upper - iv.estimate]],
                fmt="o",
                color="tab:red" if label == "before" else "tab:green",
                label=label if i == 0 else None,
            )
    ax.set_xticks(range(len(before.groups)), [g.group for g in before.groups])
    ax.set_ylabel("approval rate")
    ax.set_title(f"Approval rate by {before.name}, with intervals")
    ax.legend()
    return _png(figure)


def _tradeoff_plot(remediation: RemediationResult) -> bytes:
    figure = Figure(figsize=(6, 3.5))
    ax = figure.subplots()
    for p in remediation.points:
        gap = p.amount_disparity if p.amount_disparity is not None else 0.0
        ax.scatter(gap, p.accuracy, marker="o" if p.deployable else "x")
        ax.annotate(p.name, (gap, p.accuracy), fontsize=7)
    ax.set_xlabel("conditional amount gap")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy / fairness trade-off of each strategy")
    return _png(figure)


def _attribution_plot(attribution: AttributionReport) -> bytes:
    features = attribution.features[:8][::-1]
    figure = Figure(figsize=(6, 3.5))
    ax = figure.subplots()
    ax.barh([f.feature for f in features], [f.mean_abs_shap for f in features])
    ax.set_xlabel(f"mean |SHAP| ({attribution.scale.name})")
    ax.set_title("What drives the model")
    return _png(figure)


def _html(markdown: str, plots: dict[str, bytes], digest: str) -> str:
    """A plain rendering: the Markdown text preformatted, the plots inline."""
    images = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"></figure>'
        for name, png in plots.items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Impact assessment</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "pre{white-space:pre-wrap}</style></head><body>"
        f"<p>Assessment digest <code>{digest}</code> (sha256 of the Markdown text).</p>"
        f"<pre>{html.escape(markdown)}</pre>{images}</body></html>"
    )

"""`fairlane audit ...`: the audits on any data set, outside incidents.

A data scientist points them at a Parquet or CSV file (and a model file where one is
needed); they print a readable summary, or the full report as JSON with ``--json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

from analysis.data import DataFileError, read_table
from analysis.models import ModelFileError
from cli.api_client import CliError
from config.settings import Settings

app = typer.Typer(help="Run the audits on any data set.", no_args_is_help=True)

Protected = Annotated[list[str], typer.Option("--protected", help="protected attribute column")]
Json = Annotated[bool, typer.Option("--json", help="the full report as JSON")]


def _show(report: BaseModel, as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        typer.echo("\n".join(lines))


@app.command("provenance")
def provenance(
    data: Path,
    protected: Protected,
    label: Annotated[str | None, typer.Option(help="label column")] = None,
    min_group_size: Annotated[int, typer.Option()] = 30,
    as_json: Json = False,
) -> None:
    """Representation, base rates, missingness and the proxy scan of a data set."""
    from analysis.provenance import provenance_audit

    try:
        report = provenance_audit(
            read_table(data), protected=protected, label=label, min_group_size=min_group_size
        )
    except DataFileError as error:
        raise CliError(str(error)) from error
    lines = [report.headline]
    for scan in report.proxies.attributes:
        everything = f"{scan.all_features_auc:.3f}" if scan.all_features_auc is not None else "-"
        lines += [
            f"\npredicting {scan.attribute} (all features together: AUC {everything})",
            f"  {'feature':<28} {'NMI':>6} {'V':>6} {'AUC':>6}",
        ]
        for proxy in scan.features[:15]:
            auc = f"{proxy.auc:.3f}" if proxy.auc is not None else "-"
            mark = "  suspected proxy" if proxy.suspected else ""
            lines.append(
                f"  {proxy.feature:<28} {proxy.nmi:>6.3f} {proxy.cramers_v:>6.3f} {auc:>6}{mark}"
            )
    for slicing in report.representation.slices:
        lines.append(f"\n{slicing.name}:")
        for group in slicing.groups:
            rate = f"  label rate {group.label_rate:.3f}" if group.label_rate is not None else ""
            small = "  TOO SMALL" if group.too_small else ""
            share = f"{group.share:.1%}" if group.share is not None else "-"
            lines.append(f"  {group.group:<20} {group.count:>9} ({share}){rate}{small}")
    _show(report, as_json, lines)


@app.command("attribution")
def attribution(
    data: Path,
    model: Annotated[Path, typer.Option(help="model file (skops)")],
    protected: Protected,
    outcome: Annotated[str, typer.Option(help="decision or amount")] = "decision",
    sample_size: Annotated[int, typer.Option()] = 2000,
    proxy: Annotated[list[str] | None, typer.Option(help="suspected proxy to confirm")] = None,
    as_json: Json = False,
) -> None:
    """SHAP attribution of a model over a data set, and what drives the gap between groups."""
    from analysis.attribution import attribution_audit
    from analysis.models import open_model_file

    if outcome not in ("decision", "amount"):
        raise CliError(f"--outcome must be decision or amount, not {outcome!r}")
    try:
        report = attribution_audit(
            open_model_file(model, allow_pickle=Settings().allow_pickle_artifacts),
            read_table(data),
            protected=protected,
            outcome="decision" if outcome == "decision" else "amount",
            sample_size=sample_size,
            suspected_proxies=proxy or [],
        )
    except (DataFileError, ModelFileError) as error:
        raise CliError(str(error)) from error
    lines = [report.headline, f"explainer {report.explainer.name} on {report.rows} rows", ""]
    lines += [f"{f.feature:<28} mean |SHAP| {f.mean_abs_shap:.4f}" for f in report.features]
    for gap in report.gaps:
        drivers = ", ".join(f"{d.feature} {d.contribution:+.3f}" for d in gap.drivers[:3])
        lines.append(
            f"\n{gap.attribute}={gap.group} vs {gap.reference_group}: "
            f"gap {gap.gap:+.3f} ({drivers})"
        )
    _show(report, as_json, lines)


@app.command("validate")
def validate(
    data: Path,
    baseline: Annotated[Path, typer.Option(help="current model file")],
    candidate: Annotated[Path, typer.Option(help="candidate model file")],
    protected: Protected,
    label: Annotated[str | None, typer.Option()] = None,
    strata: Annotated[list[str] | None, typer.Option("--stratum", help="stratum column")] = None,
    proxy: Annotated[list[str] | None, typer.Option(help="proxy column for the twins")] = None,
    as_json: Json = False,
) -> None:
    """Candidate against baseline on held-out data, every group and intersection, gated."""
    from analysis.validation import scorer_from_model, validate_candidate
    from demo.credit_model import ModelLoadError, load_model_file

    allow_pickle = Settings().allow_pickle_artifacts
    from fairness.gates import GateSpec

    try:
        report = validate_candidate(
            read_table(data),
            scorer_from_model(load_model_file(baseline, allow_pickle=allow_pickle)),
            scorer_from_model(load_model_file(candidate, allow_pickle=allow_pickle)),
            protected=protected,
            label=label,
            decision="approved",
            amount="credit_limit",
            strata=strata or [],
            proxies=proxy or [],
            gates=GateSpec(),
            seed=0,
        )
    except (DataFileError, ModelLoadError) as error:
        raise CliError(str(error)) from error
    lines = [report.headline, ""]
    lines += [f"{r.verdict.value:<13} {r.reason}" for r in report.gate_report.results]
    _show(report, as_json, lines)
    if not report.gate_report.passed:
        raise typer.Exit(1)

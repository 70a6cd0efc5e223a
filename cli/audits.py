"""`fairlane audit ...`: the audits on any data set, outside incidents.

A data scientist points them at a Parquet or CSV file (and a model file where one is
needed); they print a readable summary, or the full report as JSON with ``--json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel

from analysis.data import DataFileError, read_table
from analysis.models import ModelFileError, Outcome
from cli.api_client import CliError
from config.settings import Settings

if TYPE_CHECKING:
    from analysis.columns import ModelColumns

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


VALIDATE_HELP = (
    "Candidate against baseline on held-out data, every group and intersection, gated."
    "\n\nBoth models are scikit-learn files (skops; pickles only with "
    "FAIRLANE_ALLOW_PICKLE_ARTIFACTS): a bare classifier (a decision), regressor (an amount) "
    "or pipeline, or an artifact dict holding a decision model, an amount model or both. "
    "The columns' roles come from the model's manifest (--manifest: protected attributes, "
    "strata and bins, label, outcomes) or from the flags; without outcome flags, the "
    "outcomes both models produce are compared."
    "\n\nPrints every gate before (baseline) and after (candidate) with its interval and "
    "verdict, and the group that drives each failed or inconclusive gate."
    "\n\nExit code: 0 every gate passes; 1 a gate fails; 3 no gate fails but one is "
    "inconclusive (too few rows, no label, a group too small to judge); 2 bad input."
)


@app.command("validate", help=VALIDATE_HELP)
def validate(
    data: Path,
    baseline: Annotated[Path, typer.Option(help="current model file")],
    candidate: Annotated[Path, typer.Option(help="candidate model file")],
    manifest: Annotated[
        Path | None, typer.Option(help="the model's manifest YAML: roles of the columns")
    ] = None,
    protected: Annotated[
        list[str] | None, typer.Option("--protected", help="protected attribute column")
    ] = None,
    label: Annotated[str | None, typer.Option(help="ground-truth label column")] = None,
    decision: Annotated[str | None, typer.Option(help="binary decision column")] = None,
    amount: Annotated[str | None, typer.Option(help="continuous amount column")] = None,
    strata: Annotated[list[str] | None, typer.Option("--stratum", help="stratum column")] = None,
    proxy: Annotated[list[str] | None, typer.Option(help="proxy column for the twins")] = None,
    as_json: Json = False,
) -> None:
    from analysis.validation import scorer_from_file, validate_candidate
    from cli.validation_view import EXIT_CODES, before_after
    from fairness.gates import GateSpec

    allow_pickle = Settings().allow_pickle_artifacts
    try:
        columns = _columns(manifest, protected, label, decision, amount, strata)
        if columns.decision is None and columns.amount is None:
            columns = _with_common_outcomes(columns, baseline, candidate, allow_pickle)
        needs = _needs(columns)
        report = validate_candidate(
            read_table(data),
            scorer_from_file(baseline, needs=needs, allow_pickle=allow_pickle),
            scorer_from_file(candidate, needs=needs, allow_pickle=allow_pickle),
            columns=columns,
            proxies=proxy or [],
            gates=GateSpec(),
            seed=0,
        )
    except (DataFileError, ModelFileError, ValueError) as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    _show(report, as_json, before_after(report))
    raise typer.Exit(EXIT_CODES[report.gate_report.verdict])


def _columns(
    manifest: Path | None,
    protected: list[str] | None,
    label: str | None,
    decision: str | None,
    amount: str | None,
    strata: list[str] | None,
) -> ModelColumns:
    from analysis.columns import ModelColumns
    from registry.service import ManifestError, load_manifest_file

    if manifest is not None:
        if protected or label or decision or amount or strata:
            raise ValueError("give --manifest or the column flags, not both")
        try:
            return ModelColumns.of(load_manifest_file(manifest))
        except ManifestError as error:
            raise ValueError(str(error)) from error
    if not protected:
        raise ValueError("name the protected attributes: --manifest or --protected")
    return ModelColumns(
        protected=tuple(protected),
        strata=tuple(strata or ()),
        label=label,
        decision=decision,
        amount=amount,
    )


def _with_common_outcomes(
    columns: ModelColumns, baseline: Path, candidate: Path, allow_pickle: bool
) -> ModelColumns:
    """Without outcome flags: the outcomes both models produce, under their generic names."""
    from dataclasses import replace

    from analysis.models import open_model_file

    produced = [
        set(open_model_file(path, allow_pickle=allow_pickle).models)
        for path in (baseline, candidate)
    ]
    common = produced[0] & produced[1]
    if not common:
        raise ValueError("the two models have no outcome in common to compare")
    return replace(
        columns,
        decision="decision" if "decision" in common else None,
        amount="amount" if "amount" in common else None,
    )


def _needs(columns: ModelColumns) -> list[Outcome]:
    needs: list[Outcome] = []
    if columns.decision is not None:
        needs.append("decision")
    if columns.amount is not None:
        needs.append("amount")
    return needs

"""`fairlane trail ...`: the auditor's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.api_client import call
from config import Settings

app = typer.Typer(help="Export and verify the audit trail.", no_args_is_help=True)


@app.command("export")
def export(
    incident_id: str,
    out: Annotated[Path | None, typer.Option(help="file to write; stdout when omitted")] = None,
) -> None:
    """Write an incident's whole audit trail as JSON, hashes included."""
    trail = call(Settings(), "GET", f"/v1/incidents/{incident_id}/trail")
    text = json.dumps(trail, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text)
        typer.echo(f"{len(trail['records'])} records written to {out}")


@app.command("verify")
def verify() -> None:
    """Check the whole hash chain; exits 1 if any record was altered, removed or reordered."""
    report = call(Settings(), "GET", "/v1/trail/verify")
    if report["ok"]:
        typer.echo(f"trail intact: {report['records_checked']} records verified")
        return
    for problem in report["problems"]:
        typer.secho(f"  {problem}", err=True)
    typer.secho("trail verification FAILED", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)

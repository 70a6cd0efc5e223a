"""`fairlane trail ...`: the auditor's commands.

``export`` and ``verify`` go through the API; ``verify --file`` checks an export
offline with only the public key; ``public-key`` and ``checkpoint`` work on this
machine's data directory (the key files and the database), no API needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from audit.export import IncidentTrailExport
from audit.offline import verify_export
from audit.signing import TrailKeyError, key_id, load_public_key, public_pem
from cli.api_client import CliError, call
from config import Settings

app = typer.Typer(help="Export and verify the audit trail.", no_args_is_help=True)


@app.command("export")
def export(
    incident_id: str,
    out: Annotated[Path | None, typer.Option(help="file to write; stdout when omitted")] = None,
) -> None:
    """Write an incident's audit trail as JSON, hashes and signed checkpoints included."""
    trail = call(Settings(), "GET", f"/v1/incidents/{incident_id}/trail")
    text = json.dumps(trail, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text)
        typer.echo(f"{len(trail['records'])} records written to {out}")


@app.command("verify")
def verify(
    file: Annotated[
        Path | None, typer.Option("--file", help="verify this export offline, not the live trail")
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="the trail's public key (default: the data dir's)"),
    ] = None,
) -> None:
    """Check the hash chain and its signed checkpoints; exits 1 if anything was altered,
    removed, reordered or rewritten."""
    if file is None:
        report = call(Settings(), "GET", "/v1/trail/verify")
    else:
        report = _verify_file(file, public_key or Settings().resolved_trail_public_key_file)
    _print(report)


@app.command("public-key")
def public_key(
    out: Annotated[Path | None, typer.Option(help="also write the PEM to this file")] = None,
) -> None:
    """Print the trail's public key (PEM) and its id, to hand to auditors out of band."""
    key = _load_key(Settings().resolved_trail_public_key_file)
    pem = public_pem(key)
    if out is not None:
        out.write_bytes(pem)
    typer.echo(pem.decode().rstrip())
    typer.echo(f"key id: {key_id(key)}", err=True)


@app.command("checkpoint")
def checkpoint() -> None:
    """Sign the trail's current head now (e.g. from cron on a quiet trail)."""
    from audit.configure import open_trail
    from store.db import create_tables, make_engine

    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    create_tables(engine)
    try:
        signed = open_trail(engine, settings).checkpoint()
    except TrailKeyError as error:
        raise CliError(str(error)) from None
    finally:
        engine.dispose()
    if signed is None:
        typer.echo("the trail is empty: nothing to sign")
        return
    typer.echo(f"signed record {signed.seq} ({signed.head[:16]}…) with {signed.key_id}")


def _load_key(path: Path) -> Any:
    try:
        return load_public_key(path)
    except TrailKeyError as error:
        raise CliError(f"{error} (the worker and the API write it when they first start)") from None


def _verify_file(file: Path, key_file: Path) -> dict[str, Any]:
    key = _load_key(key_file)
    try:
        exported = IncidentTrailExport.model_validate_json(file.read_bytes())
    except OSError as error:
        raise CliError(f"cannot read {file}: {error.strerror}") from None
    except ValidationError as error:
        raise CliError(f"{file} is not a trail export: {error.error_count()} problems") from None
    return verify_export(exported, key).model_dump(mode="json")


def _print(report: dict[str, Any]) -> None:
    signed = report.get("checkpoints")
    if report["ok"]:
        typer.echo(f"trail intact: {report['records_checked']} records verified")
        if signed:
            typer.echo(
                f"signed through record {signed['signed_through']} by {signed['key_id']} "
                f"({signed['checkpoints']} checkpoints; {signed['unsigned_records']} later "
                "records covered by the hash chain only)"
            )
        return
    for problem in report["problems"]:
        typer.secho(f"  seq {problem['seq']}: {problem['problem']}", err=True)
    typer.secho("trail verification FAILED", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)

"""`fairlane`: every command, grouped as the users think of them."""

from __future__ import annotations

import typer

from cli import admin, audits, incidents, monitor, services, trail
from cli.api_client import CliError

app = typer.Typer(
    help="Fairlane: durable incident response for machine-learning bias crises.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(services.up)
app.command()(services.worker)
app.command()(services.api)
app.command()(services.router)
app.command()(incidents.signoff)
app.add_typer(incidents.app, name="incident")
app.add_typer(trail.app, name="trail")
app.add_typer(monitor.app, name="monitor")
app.add_typer(audits.app, name="audit")
app.add_typer(admin.playbook_app, name="playbook")
app.add_typer(admin.model_app, name="model")
app.add_typer(admin.tokens_app, name="tokens")


def main() -> None:
    try:
        app()
    except CliError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise SystemExit(1) from None

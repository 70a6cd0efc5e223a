"""`fairlane playbook|model|tokens ...`: playbooks, the model registry and API tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.tokens import Role, issue_token
from cli.api_client import call, fail
from config import Settings
from playbooks.loader import PlaybookError, load_playbook_file
from registry.service import ManifestError, load_manifest_file

playbook_app = typer.Typer(help="Validate and list playbooks.", no_args_is_help=True)
model_app = typer.Typer(help="Register, deploy and list models.", no_args_is_help=True)
tokens_app = typer.Typer(help="Issue API tokens.", no_args_is_help=True)


@playbook_app.command("validate")
def validate(files: list[Path]) -> None:
    """Validate playbook files; every problem is named by its YAML path and line."""
    bad = 0
    for path in files:
        try:
            playbook = load_playbook_file(path)
        except PlaybookError as error:
            bad += 1
            typer.secho(f"{path}: invalid", err=True, fg=typer.colors.RED)
            for problem in error.problems:
                typer.secho(f"  {problem}", err=True)
            continue
        steps = ", ".join(f"{s.name} ({s.kind})" for s in playbook.steps)
        typer.echo(f"{path}: ok — {playbook.name}@{playbook.version}: {steps}")
        for warning in playbook.warnings():
            typer.secho(f"  warning: {warning}", err=True, fg=typer.colors.YELLOW)
    if bad:
        raise typer.Exit(1)


@playbook_app.command("list")
def list_playbooks() -> None:
    """Playbooks the API can open incidents with."""
    for name in call(Settings(), "GET", "/v1/playbooks"):
        typer.echo(name)


@model_app.command("register")
def register(
    manifest: Path,
    reason: Annotated[
        str | None,
        typer.Option(help="why a registered model's manifest changes (admins; required then)"),
    ] = None,
    allow_undeployed: Annotated[
        bool,
        typer.Option(
            "--allow-undeployed",
            help="register although the model's routing target does not know it yet; "
            "deploy it next with `fairlane model deploy`",
        ),
    ] = False,
) -> None:
    """Register a model from its manifest YAML, or change a registered one (admin, --reason).

    Each version's artifact must load and fit the manifest, and the routing target must
    know the model: a new model is registered with --allow-undeployed, then deployed.
    The manifest format is docs/manifest.md.
    """
    try:
        parsed = load_manifest_file(manifest)
    except ManifestError as error:
        fail(str(error))
        return
    params: dict[str, str] = {"reason": reason} if reason else {}
    if allow_undeployed:
        params["allow_undeployed"] = "true"
    result = call(
        Settings(),
        "POST",
        "/v1/models",
        json=parsed.model_dump(mode="json"),
        params=params or None,
    )
    typer.echo(f"registered {result['id']} (revision {result['revision']})")


@model_app.command("deploy")
def deploy(
    model: str,
    version: Annotated[str, typer.Option(help="a registered version of the model")],
    reason: Annotated[str, typer.Option(help="why it is deployed (on the audit trail)")],
) -> None:
    """Deploy a registered version at the model's routing target, with its manifest contract
    and fallback rules (admin or incident commander)."""
    result = call(
        Settings(),
        "POST",
        f"/v1/models/{model}/deployments",
        json={"version": version, "reason": reason},
    )
    rules = result["rules_version"] or "none"
    typer.echo(
        f"deployed {result['model']} {result['version']} at {result['target']} "
        f"(versions {', '.join(sorted(result['versions']))}; primary {result['primary_version']}; "
        f"fallback rules {rules})"
    )


@model_app.command("list")
def list_models() -> None:
    for model in call(Settings(), "GET", "/v1/models"):
        typer.echo(
            f"{model['id']:<20} primary {model['primary_version']:<8} {_router(model['router'])}"
        )


def _router(router: dict[str, str | None]) -> str:
    """The target id; a manifest stored before targets shows its URL, marked as such."""
    return router.get("target") or f"url {router.get('url')} (deprecated: register a target)"


@tokens_app.command("create")
def create_token(
    name: Annotated[str, typer.Option(help="principal name, e.g. alice@example.com")],
    role: Annotated[list[Role], typer.Option(help="repeat for several roles")],
) -> None:
    """Issue a token for a principal; it is printed once and stored only hashed."""
    path = Settings().resolved_tokens_file
    token = issue_token(path, name, list(role))
    typer.echo(token)
    typer.echo(f"(stored hashed in {path}; this is the only time it is shown)", err=True)

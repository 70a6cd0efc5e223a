"""`fairlane monitor ...`: a model's drift monitor and the watch that alerts go through."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from cli.api_client import CliError, call
from config import Settings

app = typer.Typer(help="Arm, disarm and show a model's drift monitor.", no_args_is_help=True)


@app.command("start")
def start(
    model: str,
    reason: Annotated[str, typer.Option(help="why; kept in the audit trail")] = "",
    policy: Annotated[
        Path | None,
        typer.Option(help="a YAML or JSON monitoring policy; default: the model manifest's"),
    ] = None,
) -> None:
    """Arm (or re-configure) the model's drift monitor."""
    body: dict[str, Any] = {"reason": reason}
    if policy is not None:
        try:
            body["policy"] = yaml.safe_load(policy.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise CliError(f"cannot read the policy {policy}: {error}") from error
    receipt = call(Settings(), "POST", f"/v1/models/{model}/monitor", json=body)
    armed = receipt["policy"]
    typer.echo(
        f"monitor armed on {receipt['watch']}: every {armed['interval']} over {armed['window']}, "
        f"acting after {armed['consecutive_breaches']} breaching evaluation(s), "
        f"opening {armed['playbook']}"
    )


@app.command("stop")
def stop(
    model: str, reason: Annotated[str, typer.Option(help="why; kept in the audit trail")]
) -> None:
    """Disarm the model's drift monitor (alerts still go through its watch)."""
    receipt = call(
        Settings(), "POST", f"/v1/models/{model}/monitor/disarm", json={"reason": reason}
    )
    typer.echo(f"monitor disarmed on {receipt['watch']}")


@app.command("show")
def show(model: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The watch: monitor status, latest evaluations, alerts held, incidents opened."""
    state = call(Settings(), "GET", f"/v1/models/{model}/watch")
    if as_json:
        typer.echo(json.dumps(state, indent=2))
        return
    typer.echo(render_watch(state))


def render_watch(state: dict[str, Any]) -> str:
    memory = state["memory"]
    lines = [f"{state['model']}: {state['status']}"]
    if memory["monitor"]:
        policy = memory["monitor"]
        lines.append(
            f"  monitor: armed by {memory['armed_by']} at {memory['armed_at']}; every "
            f"{policy['interval']} over {policy['window']}; next {memory['next_evaluation_at']}; "
            f"streak {memory['consecutive_breaches']}/{policy['consecutive_breaches']}"
        )
    for evaluation in memory["evaluations"][-5:]:
        lines.append(
            f"  {evaluation['at']}  {evaluation['verdict']:<12} {evaluation['decisions']:>7} "
            f"decisions  {evaluation['headline']}"
        )
    counts = memory["counts"]
    lines.append(
        "  alerts: " + (", ".join(f"{kind} {n}" for kind, n in counts.items() if n) or "none")
    )
    for incident in memory["incidents"]:
        closed = incident["closed_phase"] or "open"
        lines.append(
            f"  {incident['incident_id']} ({incident['source']}, {closed}): {incident['reason']}"
        )
    return "\n".join(lines)

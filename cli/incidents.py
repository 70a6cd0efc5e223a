"""`fairlane incident ...` and `fairlane signoff`: the incident commander's and approvers' CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.api_client import call, call_raw
from config import Settings

app = typer.Typer(help="Open, list, show and watch incidents.", no_args_is_help=True)


@app.command("open")
def open_incident(
    model: Annotated[str, typer.Option(help="registered model id")],
    summary: Annotated[str, typer.Option(help="what is wrong, in a sentence")],
    playbook: Annotated[str, typer.Option()] = "drift-rollback",
    severity: Annotated[str, typer.Option()] = "sev2",
) -> None:
    """Open an incident on a model with a playbook."""
    body = {"model": model, "playbook": playbook, "severity": severity, "summary": summary}
    opened = call(Settings(), "POST", "/v1/incidents", json=body)
    typer.echo(f"{opened['incident_id']}  {opened['ui_url']}")


@app.command("list")
def list_incidents(
    model: Annotated[str | None, typer.Option()] = None,
    phase: Annotated[str | None, typer.Option()] = None,
    severity: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List incidents, filtered through Temporal visibility."""
    params = {k: v for k, v in {"model": model, "phase": phase, "severity": severity}.items() if v}
    rows = call(Settings(), "GET", "/v1/incidents", params=params)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(
            f"{row['incident_id']:<26} {row['model'] or '-':<16} {row['severity'] or '-':<5} "
            f"{row['phase'] or '-':<17} {row['playbook'] or '-':<15} {row['status']}"
        )


@app.command("show")
def show(incident_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show an incident's state: phase, steps, route, sign-offs."""
    state = call(Settings(), "GET", f"/v1/incidents/{incident_id}")
    typer.echo(json.dumps(state, indent=2) if as_json else render_state(state))


@app.command("watch")
def watch(
    incident_id: str,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 2.0,
) -> None:
    """Follow an incident until it closes."""
    settings = Settings()
    last = ""
    while True:
        state = call(settings, "GET", f"/v1/incidents/{incident_id}")
        text = render_state(state)
        if text != last:
            typer.echo(text + "\n")
            last = text
        if state["phase"] in {"resolved", "rolled_back", "escalated", "failed"}:
            return
        time.sleep(interval)


@app.command("report")
def report(
    incident_id: str,
    html: Annotated[
        bool, typer.Option("--html", help="HTML with plots instead of Markdown")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="file to write; stdout when omitted")] = None,
) -> None:
    """The incident's Algorithmic Impact Assessment; its digest is what sign-offs bind to."""
    fmt = "html" if html else "md"
    content, digest = call_raw(
        Settings(), "GET", f"/v1/incidents/{incident_id}/report?format={fmt}"
    )
    if out is None:
        typer.echo(content)
    else:
        out.write_text(content)
    typer.echo(f"assessment digest: {digest}", err=True)


CANARY_ACTIONS = ("pause", "resume", "promote", "abort")


@app.command("canary")
def canary(
    action: Annotated[str, typer.Argument(help="pause | resume | promote | abort")],
    incident_id: str,
    reason: Annotated[str, typer.Option(help="why; kept in the audit trail")],
    full: Annotated[
        bool, typer.Option("--full", help="with promote: skip every remaining ramp step")
    ] = False,
) -> None:
    """Control an incident's canary ramp (incident commanders only)."""
    if action not in CANARY_ACTIONS:
        raise typer.BadParameter(f"{action!r} is not one of {', '.join(CANARY_ACTIONS)}")
    if full and action != "promote":
        raise typer.BadParameter("--full only goes with promote")
    path_action = "promote_full" if full else action
    receipt = call(
        Settings(),
        "POST",
        f"/v1/incidents/{incident_id}/canary/{path_action}",
        json={"reason": reason},
    )
    typer.echo(
        f"{receipt['action']} accepted at ramp step {receipt['ramp_step']} "
        f"({receipt['percent']:g}%)"
    )


@app.command("stand-down")
def stand_down(
    incident_id: str,
    reason: Annotated[str, typer.Option(help="why Fairlane should stop trying; kept in the trail")],
) -> None:
    """Stop trying to contain an incident's model (incident commanders only)."""
    receipt = call(
        Settings(),
        "POST",
        f"/v1/incidents/{incident_id}/containment/stand-down",
        json={"reason": reason},
    )
    since = receipt["failing_since"]
    typer.echo(
        f"containment stood down at step {receipt['step']}"
        + (f" (failing since {since})" if since else "")
    )


def signoff(
    incident_id: str,
    role: Annotated[str, typer.Option(help="the role you decide for")],
    approve: Annotated[bool, typer.Option("--approve/--reject")],
    comment: Annotated[str, typer.Option()] = "",
    assessment: Annotated[
        str | None, typer.Option(help="digest of the impact assessment you read (sha256:…)")
    ] = None,
) -> None:
    """Approve or reject an incident's open sign-off, for a role you hold."""
    body = {
        "role": role,
        "decision": "approve" if approve else "reject",
        "comment": comment,
        "assessment_digest": assessment,
    }
    receipt = call(Settings(), "POST", f"/v1/incidents/{incident_id}/signoffs", json=body)
    typer.echo(
        f"recorded: {role} is {receipt['role_outcome']}, sign-off is {receipt['signoff_outcome']}"
    )


def render_state(state: dict[str, Any]) -> str:
    lines = [
        f"{state['incident_id']}  {state['model']}  {state['severity']}  phase={state['phase']}"
        f"  contained={state['contained']}",
        f"  playbook {state['playbook']}@{state['playbook_version']}, "
        f"commander {state['commander']}: {state['summary']}",
    ]
    route = state.get("route_now")
    if route:
        lines.append(
            f"  route: serving {route['serving']} (gen {route['generation']}), "
            f"shadow {route['shadow_versions']}"
        )
    containment = state.get("containment")
    if containment and containment.get("failing_since") and containment.get("confirmed_at") is None:
        stood = containment.get("stood_down_by")
        lines.append(
            f"  CONTAINMENT FAILING since {containment['failing_since']}: "
            f"{containment.get('last_error')}"
            + (
                f" (stood down by {stood}: {containment.get('stood_down_reason')})"
                if stood
                else "; still trying"
            )
        )
    for step in state["steps"]:
        lines.append(f"  [{step['status']:<9}] {step['name']} ({step['kind']}): {step['detail']}")
    signoff_state = state.get("signoff")
    if signoff_state:
        lines.append(
            f"  sign-off {signoff_state['outcome']} (deadline {signoff_state['deadline']})"
        )
        for role in signoff_state["roles"]:
            votes = ", ".join(f"{v['principal']}:{v['decision']}" for v in role["votes"])
            lines.append(
                f"    {role['role']:<15} {role['outcome']:<9} quorum {role['quorum']}  {votes}"
            )
    if state.get("canary"):
        lines.extend(render_canary(state["canary"]))
    if state.get("outcome"):
        lines.append(f"  outcome: {state['outcome']}")
    return "\n".join(lines)


def render_canary(canary: dict[str, Any]) -> list[str]:
    ramp = " -> ".join(f"{p:g}%" for p in canary["ramp"])
    paused = ", PAUSED" if canary["paused"] else ""
    lines = [
        f"  canary {canary['candidate_version']} {canary['state']}{paused}: "
        f"at {canary['percent']:g}% (step {canary['ramp_index'] + 1} of {ramp})"
    ]
    for done in canary["completed"]:
        lines.append(
            f"    {done['percent']:>5g}%  {done['result']:<13} {done['looks']:>4} looks  "
            f"{done['detail']}"
        )
    live = canary.get("live")
    if live:
        lines.append(
            f"    baking: {live['time_left']} left of {live['bake_target']}, "
            f"{live['looks']} looks ({live['passes']} pass, {live['breaches']} breach, "
            f"{live['inconclusive']} inconclusive), extensions {live['extensions']}"
        )
        if live.get("latest"):
            lines.append(f"    latest: {live['latest']['analysis']['headline']}")
        needed = {g: n for g, n in live.get("samples_needed", {}).items() if n}
        if needed:
            lines.append(f"    samples still needed per group: {needed}")
    if canary.get("shadow_until"):
        lines.append(
            f"    promoted {canary['promoted_at']}; old version in shadow until "
            f"{canary['shadow_until']}"
        )
    return lines

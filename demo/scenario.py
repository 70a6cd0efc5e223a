"""`make demo`: a real bias incident on the embedded stack, from traffic to sign-off.

1. The credit model (trained on generated data with a redlining proxy) is deployed at
   the reference router and registered in Fairlane from its manifest.
2. Real applicants flow through the router; the decision log shows the disparity.
3. An incident is opened on the drift-rollback playbook; the router flips to the
   rules-based fallback and a real request proves it, with the model in shadow.
4. Sign-offs arrive through the API; a forged one is refused.
5. The incident closes; its timeline and the trail verification are printed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml

from api.tokens import Role, issue_token
from config import Settings
from config.logging import configure_logging
from config.targets import GATEWAY
from contracts.model import FallbackRules, ModelManifest
from contracts.routing import RouteUpdate, Serving
from demo.alerts import ALERTS_SENDER, alert_storm
from demo.canary import (
    DEMO_PLAYBOOK,
    INJECT_AT_PERCENT,
    inject_regression,
    live_traffic,
    write_demo_playbook,
)
from demo.credit_model import DemoModelFiles, prepare_demo_model
from demo.dataset import read_dataset
from demo.gateway import FALLBACK_RULES, credit_manifest, credit_request
from fairness.outcomes import combine_strata, conditional_disparity, disparate_impact_ratio
from registry.service import load_manifest_file
from router.client import RouterClient
from router.schemas import DecisionRequest, LoggedDecision
from stack.supervisor import EmbeddedStack
from store.artifacts import ArtifactStore

TRAFFIC = 800
SUMMARY = "Group B receives ~30% lower credit limits at identical income and credit history"
PRINCIPALS: dict[str, list[Role]] = {
    "dana.ic": [Role.INCIDENT_COMMANDER],
    "lee.legal": [Role.LEGAL],
    "lin.legal": [Role.LEGAL],
    "eve.exec": [Role.EXECUTIVE],
    "chen.compliance": [Role.COMPLIANCE],
    "mallory.comms": [Role.COMMUNICATIONS],
    "ana.auditor": [Role.AUDITOR],
    ALERTS_SENDER: [Role.ALERT_SOURCE],
}


def say(text: str = "") -> None:
    print(text, flush=True)


def write_manifest(files: DemoModelFiles, target: str = GATEWAY) -> Path:
    """The demo model's manifest, written as a user would, then registered from the file."""
    manifest = demo_manifest(files, target)
    path = files.training_csv.parent / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest.model_dump(mode="json"), sort_keys=False))
    return path


def demo_manifest(files: DemoModelFiles, target: str = GATEWAY) -> ModelManifest:
    """The demo model's manifest, its fallback rules installed in the artifacts directory.

    Its router is a target the operators declared (the reference gateway is `gateway`),
    never a URL.
    """
    manifest = credit_manifest(
        files.model_id,
        {files.version: files.artifact_name},
        fallback=FallbackRules(rules=install_fallback_rules(files)),
        target=target,
    )
    version = manifest.versions[0].model_copy(
        update={
            "training_data": str(files.training_csv),
            "validation_data": str(files.validation_csv),
        }
    )
    return manifest.model_copy(update={"versions": [version]})


def install_fallback_rules(files: DemoModelFiles) -> str:
    """Copy the demo's rules YAML into the artifacts directory; its name there."""
    name = f"{files.model_id}/credit-fallback.yaml"
    target = files.artifacts_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(FALLBACK_RULES.read_bytes())
    return name


class Api:
    """The demo's HTTP calls to Fairlane, each as one of the demo principals."""

    def __init__(self, base_url: str, tokens: dict[str, str]) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=30)
        self._tokens = tokens

    async def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._tokens[who]}"}
        return await self._client.request(method, path, headers=headers, **kwargs)

    async def ok(self, who: str, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.call(who, method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} as {who}: {response.status_code} {response.text}")
        return response.json()

    async def wait_for(self, incident_id: str, done: Any, what: str, timeout_s: float = 60) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = await self.ok("ana.auditor", "GET", f"/v1/incidents/{incident_id}")
            if done(state):
                return state
            await asyncio.sleep(0.25)
        raise RuntimeError(f"incident {incident_id} did not reach '{what}' in {timeout_s:.0f}s")

    async def close(self) -> None:
        await self._client.aclose()


def applicant_from(row: Any, applicant_id: str | None = None) -> DecisionRequest:
    """One applicant of the dataset as a gateway request."""
    return credit_request(
        applicant_id or str(row.applicant_id),
        income=row.income,
        credit_history_years=row.credit_history_years,
        debt_ratio=row.debt_ratio,
        zip_code=row.zip_code,
        group=row.group,
    )


async def send_traffic(router: RouterClient, model: str, applicants: pd.DataFrame) -> None:
    """Real requests, a few at a time, as a busy front end would send them."""
    gate = asyncio.Semaphore(8)

    async def one(row: Any) -> None:
        async with gate:
            await router.decide(model, applicant_from(row))

    await asyncio.gather(*(one(row) for row in applicants.itertuples(index=False)))


async def serve_primary(router: RouterClient, model: str) -> None:
    """Put the model back in service (a previous demo run left it contained)."""
    route = await router.get_route(model)
    if route.serving is not Serving.PRIMARY or route.shadow_versions:
        await router.set_route(
            model,
            RouteUpdate(
                primary_version=route.primary_version,
                generation=route.generation + 1,
                updated_by="demo-setup",
                reason="demo starts with the model in service",
            ),
        )


def describe_disparity(decisions: list[LoggedDecision], label: str) -> None:
    frame = pd.DataFrame([d.model_dump() for d in decisions])
    approved = frame[frame["decision"]]
    gap = conditional_disparity(
        approved["amount"],
        approved["group"],
        combine_strata(approved["stratum"]),
        min_count=5,
    )
    dir_ = disparate_impact_ratio(frame["decision"], frame["group"])
    gap_pct = 100 * (gap.relative_gap or 0.0)
    finding = (
        f"group {gap.worst_group} gets {gap_pct:.1f}% lower limits"
        if gap.worst_group and gap_pct >= 0.5
        else "no group gets lower limits"
    )
    say(
        f"  {label}: {len(frame)} decisions; {finding} at identical income and credit-history "
        f"band; approval disparate-impact ratio {dir_:.2f}"
    )


def print_timeline(trail: dict[str, Any]) -> None:
    say(f"\nTimeline of {trail['incident_id']} ({len(trail['records'])} audit records):")
    for record in trail["records"]:
        if record["kind"] == "activity.started":
            continue
        detail = record.get("detail") or {}
        if isinstance(detail, str):
            detail = {"detail": detail}
        note = ", ".join(f"{k}={v}" for k, v in detail.items() if k not in _QUIET_DETAIL)
        attempt = f"#{record['attempt']}" if record.get("attempt") else ""
        say(
            f"  {record['seq']:>4} {str(record['at'])[11:23]} {record['kind']:<20} "
            f"{record.get('step') or '-':<22}{attempt:<3} {record['actor']:<26} {note[:100]}"
        )


_QUIET_DETAIL = {"task_queue", "workflow_run_id"}
_CLOSED = {"resolved", "failed", "escalated", "rolled_back"}


async def show_the_disparity(router: RouterClient, model: str, applicants: pd.DataFrame) -> None:
    say(f"\n1. {len(applicants)} real applicants through the router, model serving:")
    start = datetime.now(UTC)
    await send_traffic(router, model, applicants)
    describe_disparity(await router.decisions(model, since=start), "primary model")


async def contain(api: Api, router: RouterClient, model: str, applicants: pd.DataFrame) -> str:
    say("\n2. Opening an incident on the drift-rollback playbook...")
    opened = await api.ok(
        "dana.ic",
        "POST",
        "/v1/incidents",
        json={"model": model, "playbook": "drift-rollback", "severity": "sev1", "summary": SUMMARY},
    )
    incident: str = opened["incident_id"]
    say(f"  {incident} opened; Temporal UI: {opened['ui_url']}")
    state = await api.wait_for(incident, lambda s: s["contained"], "contained")
    route = state["route_now"]
    say(
        f"  router now serving {route['serving']} (generation {route['generation']}), "
        f"shadow {route['shadow_versions']}"
    )
    probe = applicant_from(next(applicants.itertuples(index=False)), "probe-after-containment")
    answer = await router.decide(model, probe)
    say(f"  a real request now: served_by={answer.served_by.value} version={answer.version}")
    start = datetime.now(UTC)
    await send_traffic(router, model, applicants)
    describe_disparity(await router.decisions(model, since=start), "rules-based fallback")
    logged = await router.decisions(model, since=start, include_shadow=True, limit=10 * TRAFFIC)
    shadow = sum(d.shadow for d in logged)
    say(f"  the model kept scoring in shadow: {shadow} shadow decisions logged, none returned")
    return incident


async def sign_off(api: Api, incident: str) -> None:
    say("\n3. Sign-offs through the API:")
    await api.wait_for(incident, lambda s: s["phase"] == "awaiting_signoff", "awaiting sign-off")
    path = f"/v1/incidents/{incident}/signoffs"
    attempts = (
        ("forged: mallory.comms approving for legal", "mallory.comms", "legal"),
        ("not required: communications on this sign-off", "mallory.comms", "communications"),
    )
    for what, who, role in attempts:
        refused = await api.call(who, "POST", path, json={"role": role, "decision": "approve"})
        say(f"  {what} -> HTTP {refused.status_code}: {refused.json()['detail']}")
    for who, role in (("lee.legal", "legal"), ("chen.compliance", "compliance")):
        body = {"role": role, "decision": "approve", "comment": "containment confirmed"}
        receipt = await api.ok(who, "POST", path, json=body)
        say(
            f"  {who} approves for {role} -> role {receipt['role_outcome']}, "
            f"sign-off {receipt['signoff_outcome']}"
        )


async def close_and_audit(api: Api, incident: str) -> None:
    state = await api.wait_for(incident, lambda s: s["phase"] in _CLOSED, "closed")
    say(f"\n4. Incident {incident} closed: phase={state['phase']} ({state['outcome']})")
    print_timeline(await api.ok("ana.auditor", "GET", f"/v1/incidents/{incident}/trail"))
    report = await api.ok("ana.auditor", "GET", "/v1/trail/verify")
    verdict = "intact" if report["ok"] else f"FAILED: {report['problems']}"
    say(f"\ntrail verify: {verdict} ({report['records_checked']} records checked)")


ETHICAL_SIGNERS = (
    ("lee.legal", "legal"),
    ("lin.legal", "legal"),
    ("chen.compliance", "compliance"),
    ("eve.exec", "executive"),
    ("mallory.comms", "communications"),
)


async def ethical_audit(
    api: Api, router: RouterClient, store: ArtifactStore, model: str, applicants: pd.DataFrame
) -> None:
    """The full runbook: audits, a fairer candidate, gates, the assessment, bound sign-offs,
    then the fairness-gated canary under live traffic, with a regression injected mid-ramp."""
    await serve_primary(router, model)
    say(
        f"\n5. The full ETHICAL-AUDIT runbook on the same model ({DEMO_PLAYBOOK}: ramp in seconds):"
    )
    body = {"model": model, "playbook": DEMO_PLAYBOOK, "severity": "sev1", "summary": SUMMARY}
    incident: str = (await api.ok("dana.ic", "POST", "/v1/incidents", json=body))["incident_id"]
    say(f"  {incident} opened")
    follow = Follow()
    signed: set[str] = set()
    async with live_traffic(router, model, applicants, applicant_from) as sent:
        while True:
            state = await api.wait_for(
                incident,
                lambda s: follow.show(s, signed),
                "a sign-off, the regression point or the end",
                timeout_s=900,
            )
            if state["phase"] in _CLOSED:
                break
            if state["phase"] == "awaiting_signoff":
                digest = await _sign_assessment(api, incident, state, first=not signed)
                signed.add(digest)
                continue
            candidate = state["canary"]["candidate_version"]
            artifact = await inject_regression(router, store, model, candidate)
            follow.injected = True
            say(
                f"  !! injected a bias regression: {candidate} now serves {artifact} "
                f"at {state['canary']['percent']:g}% of live traffic"
            )
    say(f"  {sent[0]} live requests sent through the router during the runbook")
    follow.show(state, signed)
    say(f"  {incident} closed: phase={state['phase']} ({state['outcome']})")
    route = state["route_now"]
    say(
        f"  router: serving {route['serving']} {route['primary_version']}, "
        f"shadow {route['shadow_versions']}"
    )


class Follow:
    """Prints each step as it finishes and each ramp step of the canary, and says when the
    demo has something to do: a sign-off on a new assessment, the bad push halfway up the
    first ramp, or reading the closed incident."""

    def __init__(self) -> None:
        self.steps = 0
        self.ramp: dict[str, int] = {}
        self.injected = False

    def show(self, state: dict[str, Any], signed: set[str]) -> bool:
        self._print(state)
        if state["phase"] in _CLOSED:
            return True
        assessment = state["findings"]["assessment"]
        if state["phase"] == "awaiting_signoff" and assessment:
            return assessment["digest"] not in signed
        canary = state.get("canary")
        return bool(
            not self.injected
            and canary
            and canary["state"] == "ramping"
            and canary["percent"] >= INJECT_AT_PERCENT
        )

    def _print(self, state: dict[str, Any]) -> None:
        canary = state.get("canary")
        if canary:
            key = canary["candidate_version"]
            for done in canary["completed"][self.ramp.get(key, 0) :]:
                say(
                    f"    canary {done['percent']:>3g}% {done['result']:<12} "
                    f"({done['looks']} looks): {done['detail'][:150]}"
                )
            self.ramp[key] = len(canary["completed"])
        for step in state["steps"][self.steps :]:
            if step["status"] == "running":
                break
            say(f"  [{step['status']}] {step['name']}: {step['detail'][:220]}")
            self.steps += 1


async def _sign_assessment(api: Api, incident: str, state: dict[str, Any], *, first: bool) -> str:
    assessment = state["findings"]["assessment"]
    path = f"/v1/incidents/{incident}/signoffs"
    if first:
        report = await api.call("ana.auditor", "GET", f"/v1/incidents/{incident}/report")
        say(f"  impact assessment {assessment['digest']}\n  {assessment['html']}")
        say("  " + "\n  ".join(report.text.splitlines()[:12]))
        unbound = await api.call(
            "lee.legal", "POST", path, json={"role": "legal", "decision": "approve"}
        )
        say(
            f"  approval naming no assessment -> HTTP {unbound.status_code}: "
            f"{unbound.json()['detail']}"
        )
    else:
        say(f"  a new impact assessment after the rollback: {assessment['digest']}")
    for who, role in ETHICAL_SIGNERS:
        decision = {"role": role, "decision": "approve", "assessment_digest": assessment["digest"]}
        receipt = await api.ok(who, "POST", path, json=decision)
        say(f"  {who} approves for {role} -> sign-off {receipt['signoff_outcome']}")
    return str(assessment["digest"])


async def deploy_and_register(api: Api, router: RouterClient, files: DemoModelFiles) -> None:
    """Register the model from its manifest, then deploy it through Fairlane (`fairlane model
    deploy`): the gateway gets the version, the manifest's contract and the fallback rules."""
    manifest = write_manifest(files)
    body = load_manifest_file(manifest).model_dump(mode="json")
    # Deploying needs the registration, so a new model is registered before its routing
    # target knows it, and the registration records that it was (docs/manifest.md).
    registered = await api.ok(
        "dana.ic", "POST", "/v1/models", json=body, params={"allow_undeployed": "true"}
    )
    say(f"Registered model {registered['id']} from {manifest} (rev {registered['revision']})")
    deployed = await api.ok(
        "dana.ic",
        "POST",
        f"/v1/models/{files.model_id}/deployments",
        json={"version": files.version, "reason": "the demo puts the credit model in service"},
    )
    say(
        f"Deployed {deployed['model']} {deployed['version']} at {deployed['target']} "
        f"(fallback rules {deployed['rules_version']})"
    )
    await serve_primary(router, files.model_id)


async def scenario(settings: Settings) -> None:
    tokens = {
        name: issue_token(settings.resolved_tokens_file, name, roles)
        for name, roles in PRINCIPALS.items()
    }
    say("Preparing the credit model (generated applicants with a zip-code proxy for group)...")
    files = prepare_demo_model(settings.data_dir, artifacts=settings.artifact_store())
    stack = EmbeddedStack(settings)
    say("Starting the embedded stack: Temporal dev server, router, worker, API...")
    await stack.start()
    settings = stack.settings
    assert settings.router_token is not None
    api = Api(settings.api_url, tokens)
    try:
        token = settings.router_token.get_secret_value()
        async with RouterClient(settings.router_url, token) as router:
            await deploy_and_register(api, router, files)
            applicants = read_dataset(files.validation_csv).sample(TRAFFIC, random_state=11)
            await show_the_disparity(router, files.model_id, applicants)
            incident = await contain(api, router, files.model_id, applicants)
            await sign_off(api, incident)
            await close_and_audit(api, incident)
            await ethical_audit(api, router, settings.artifact_store(), files.model_id, applicants)
            await alert_storm(api, router, files.model_id)
    finally:
        await api.close()
        stack.stop()
        say("Embedded stack stopped.")


def run_demo() -> None:
    """Runs in FAIRLANE_DATA_DIR (default ./data) with its own principals' tokens file."""
    settings = Settings()
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    tokens_file = data_dir / "demo-tokens.json"
    tokens_file.unlink(missing_ok=True)
    configure_logging("console", "warning")
    playbooks_dir = write_demo_playbook(data_dir / "demo-playbooks").parent
    asyncio.run(
        scenario(
            settings.model_copy(
                update={
                    "data_dir": data_dir,
                    "tokens_file": tokens_file,
                    "playbooks_dir": playbooks_dir,
                }
            )
        )
    )

"""Containment latency: from the API call that opens an incident to the router serving fallback.

Beside it, in the same run, the baseline: setting the same route directly at the
router and asking it for a decision. The ratio is what to watch (it holds on a noisy
machine; absolute times do not). Starts the embedded stack in a scratch folder, on
its own ports, and stops it after.

Then an outage: the router is stopped, an incident is opened, and the router stays
down for ``--outage-s`` (past the contain step's retry budget, so containment has
escalated and keeps trying); ``outage_recovery_s`` is the time from the router's
return (its health check answering) to the fallback being served, to set beside the
step's ``keep_trying_every`` (15s in drift-rollback) and the no-outage p50.

    .venv/bin/python -m bench.containment [--incidents 50] [--outage-s 90]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from api.tokens import Role, issue_token
from bench.figures import p50_p99
from config.logging import configure_logging
from contracts.routing import Route, RouteUpdate, Serving
from demo.credit_model import prepare_demo_model
from demo.gateway import credit_request, deploy_credit
from demo.scenario import write_manifest
from registry.service import load_manifest_file
from router.client import RouterClient
from stack.loopback import settings_on_free_ports
from stack.supervisor import EmbeddedStack
from stack.temporal import connect

PROBE = credit_request(
    applicant_id="bench-probe",
    income=48_000.0,
    credit_history_years=7.0,
    debt_ratio=0.25,
    zip_code="Z02",
    group="B",
)


async def serve_primary(router: RouterClient, model: str, by: str) -> Route:
    route = await router.get_route(model)
    if route.serving is Serving.PRIMARY:
        return route
    return await router.set_route(
        model,
        RouteUpdate(
            serving=Serving.PRIMARY,
            primary_version=route.primary_version,
            generation=route.generation + 1,
            updated_by=by,
        ),
    )


async def until_fallback(router: RouterClient, model: str) -> None:
    while (await router.decide(model, PROBE)).served_by is not Serving.FALLBACK:
        pass


async def outage_recovery(
    stack: EmbeddedStack, router: RouterClient, api: httpx.AsyncClient, model: str, down_s: float
) -> tuple[float, str]:
    """Seconds from the router's return to the fallback served, and the incident's
    containment state while the router was down."""
    await serve_primary(router, model, "bench")
    stack.stop_service("router")
    opened = await api.post(
        "/v1/incidents", json={"model": model, "severity": "sev1", "summary": "bench outage"}
    )
    opened.raise_for_status()
    incident = opened.json()["incident_id"]
    await asyncio.sleep(down_s)
    state = (await api.get(f"/v1/incidents/{incident}")).json()
    containment = state.get("containment") or {}
    while_down = (
        f"phase={state['phase']} failing_since={containment.get('failing_since')} "
        f"contained={state['contained']}"
    )
    await stack.restart("router")
    back = time.perf_counter()
    await until_fallback(router, model)
    return time.perf_counter() - back, while_down


async def run(incidents: int, outage_s: float, data_dir: Path) -> None:
    settings = settings_on_free_ports(data_dir)
    token = issue_token(
        settings.resolved_tokens_file, "bench", [Role.INCIDENT_COMMANDER, Role.ADMIN]
    )
    files = prepare_demo_model(data_dir)
    stack = EmbeddedStack(settings)
    await stack.start()
    settings = stack.settings
    assert settings.router_token is not None
    headers = {"Authorization": f"Bearer {token}"}
    try:
        temporal = await connect(settings)
        async with (
            RouterClient(settings.router_url, settings.router_token.get_secret_value()) as router,
            httpx.AsyncClient(base_url=settings.api_url, headers=headers, timeout=30) as api,
        ):
            await deploy_credit(
                router, files.model_id, {files.version: files.artifact_name}, files.version
            )
            manifest = load_manifest_file(write_manifest(files))
            (await api.post("/v1/models", json=manifest.model_dump(mode="json"))).raise_for_status()

            direct: list[float] = []
            for _ in range(incidents):
                route = await serve_primary(router, files.model_id, "bench")
                start = time.perf_counter()
                await router.set_route(
                    files.model_id,
                    RouteUpdate(
                        serving=Serving.FALLBACK,
                        primary_version=route.primary_version,
                        shadow_versions=[route.primary_version],
                        generation=route.generation + 1,
                        updated_by="bench-direct",
                    ),
                )
                await until_fallback(router, files.model_id)
                direct.append((time.perf_counter() - start) * 1000)

            contained: list[float] = []
            for _ in range(incidents):
                await serve_primary(router, files.model_id, "bench")
                start = time.perf_counter()
                opened = await api.post(
                    "/v1/incidents",
                    json={"model": files.model_id, "severity": "sev1", "summary": "bench"},
                )
                opened.raise_for_status()
                await until_fallback(router, files.model_id)
                contained.append((time.perf_counter() - start) * 1000)
                await temporal.get_workflow_handle(opened.json()["incident_id"]).terminate("bench")

            recovery_s, while_down = await outage_recovery(
                stack, router, api, files.model_id, outage_s
            )
    finally:
        stack.stop()

    p50, p99 = p50_p99(contained)
    direct_p50 = statistics.median(direct)
    print(
        f"incidents={incidents} containment min={min(contained):.1f}ms max={max(contained):.1f}ms"
    )
    print(f"direct route set min={min(direct):.1f}ms max={max(direct):.1f}ms")
    print(f"router down {outage_s:.0f}s, incident while down: {while_down}")
    print(
        f"containment p50_ms={p50:.1f} p99_ms={p99:.1f} "
        f"direct_p50_ms={direct_p50:.1f} ratio={p50 / direct_p50:.1f} "
        f"outage_recovery_s={recovery_s:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument("--outage-s", type=float, default=90, help="how long the router stays down")
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory(prefix="fairlane-bench-") as scratch:
        asyncio.run(run(args.incidents, args.outage_s, Path(scratch)))


if __name__ == "__main__":
    main()

"""Detect to rollback: a fair candidate ramps on the whole embedded stack, then regresses.

See :mod:`bench.canary` for what is measured and against which baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, WorkflowHandle

from audit.trail import AuditTrail
from bench.canary.models import CANDIDATE, TOKEN, Models, stack_settings
from config.targets import GATEWAY
from contracts.canary import QUERY_CANARY_PROGRESS, CanaryAnalysis, RampStepProgress
from contracts.incident import (
    QUERY_STATE,
    WORKFLOW_TYPE,
    IncidentInput,
    IncidentState,
)
from contracts.metrics import Side
from contracts.model import Feature, ModelManifest, ModelVersion, Outcomes, RouterRef
from contracts.playbook.schema import Playbook
from contracts.routing import RouteUpdate, Serving
from contracts.severity import Severity
from demo.credit_model import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from demo.dataset import read_dataset
from demo.gateway import credit_request, deploy_credit
from router.client import RouterClient
from stack.supervisor import EmbeddedStack
from stack.temporal import connect
from store.artifacts import sha256_file
from store.db import make_engine

ANALYSIS_INTERVAL_S = 2.0
CANARY_METRICS: dict[str, Any] = {
    # What the regression is about: amounts at equal income and credit, and approvals.
    "max_conditional_disparity": 0.05,
    "min_disparate_impact_ratio": 0.8,
    "min_samples_per_group": 40,
    # Off: live traffic has no outcomes (equalized odds, error rate), and every enabled
    # test takes its Bonferroni share of a look's alpha whether it can be judged or not.
    "max_demographic_parity_difference": None,
    "max_equalized_odds_difference": None,
    "max_approval_rate_shift": None,
    "max_error_rate_increase": None,
}
POLL_S = 0.05
CONCURRENT_REQUESTS = 4


class RollbackRun(BaseModel):
    """One regression injected into a passing canary, and how it ended."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    t0: datetime  # the first decision of the regressed candidate, from the decision log
    look_at: datetime  # the breaching look (its window's end; the analysis starts then)
    t1: datetime  # GET route first showed the canary gone
    router_applied: datetime  # the route's own updated_at
    deploy_to_first_decision_ms: float
    looks_before: int  # looks of the step when the regression was injected
    passes_before: int
    looks_to_breach: int  # looks after the injection, the breaching one included
    candidate_decisions: int  # the candidate's decisions in the breaching look's window
    regressed_decisions: int  # of which the regressed build answered
    decisions_per_s: float
    headline: str

    @property
    def detect_to_rollback_s(self) -> float:
        return (self.t1 - self.t0).total_seconds()

    @property
    def evidence_s(self) -> float:
        """T0 to the breaching look: waiting for the regressed decisions to outweigh the rest."""
        return (self.look_at - self.t0).total_seconds()

    @property
    def act_s(self) -> float:
        """The breaching look to T1: the analysis, the child's end, audit, the route change."""
        return (self.t1 - self.look_at).total_seconds()


def canary_playbook() -> Playbook:
    return Playbook.model_validate(
        {
            "name": "bench-canary",
            "version": "1",
            "steps": [
                {"name": "contain", "kind": "route", "serving": "fallback"},
                {
                    "name": "canary",
                    "kind": "canary",
                    "candidate_version": CANDIDATE,
                    "ramp": [50, 100],
                    "bake": "10m",  # never ends within the benchmark
                    "analysis_interval": f"{ANALYSIS_INTERVAL_S:g}s",
                    "inconclusive_limit": 0,  # planned looks = bake / interval = 300
                    "metrics": CANARY_METRICS,
                },
            ],
        }
    )


def incident_input(models: Models) -> IncidentInput:
    files = models.files
    manifest = ModelManifest(
        id=files.model_id,
        versions=[
            ModelVersion(
                version=files.version,
                artifact=files.artifact_name,
                sha256=sha256_file(files.artifact),
            ),
            ModelVersion(version=CANDIDATE, artifact=models.fair, sha256=models.fair_sha256),
        ],
        primary_version=files.version,
        label="approved",
        outcomes=Outcomes(decision="approved", amount="credit_limit"),
        protected_attributes=["group"],
        strata=["income_band", "credit_band"],
        features=[
            *(Feature(name=name, type="numeric") for name in NUMERIC_FEATURES),
            *(Feature(name=name, type="categorical") for name in CATEGORICAL_FEATURES),
        ],
        router=RouterRef(target=GATEWAY),  # the worker declares the router as `gateway`
    )
    return IncidentInput(
        incident_id=f"inc-bench-{uuid.uuid4().hex[:10]}",
        model=manifest,
        playbook=canary_playbook(),
        severity=Severity.SEV1,
        summary="bench: a fair candidate ramps, then a biased build ships under its name",
        commander="bench",
        opened_at=datetime.now(UTC),
    )


class Traffic:
    """Applications sent through the router, ``CONCURRENT_REQUESTS`` at a time, until stopped."""

    def __init__(self, router: RouterClient, model: str, applicants: pd.DataFrame) -> None:
        self._router, self._model = router, model
        self._rows = list(applicants.itertuples(index=False))
        self._stop = asyncio.Event()
        self.sent = 0
        self._started = time.perf_counter()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Traffic]:
        tag = uuid.uuid4().hex[:6]
        rows = itertools.count()
        tasks = [asyncio.create_task(self._send(tag, rows)) for _ in range(CONCURRENT_REQUESTS)]
        self._started = time.perf_counter()
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)

    @property
    def per_second(self) -> float:
        return self.sent / (time.perf_counter() - self._started)

    async def _send(self, tag: str, rows: Iterator[int]) -> None:
        while not self._stop.is_set():
            i = next(rows)
            row = self._rows[i % len(self._rows)]
            applicant = credit_request(
                applicant_id=f"{row.applicant_id}-{tag}-{i}",  # unique: a fresh canary bucket
                income=float(row.income),
                credit_history_years=float(row.credit_history_years),
                debt_ratio=float(row.debt_ratio),
                zip_code=str(row.zip_code),
                group=str(row.group),
            )
            await self._router.decide(self._model, applicant)
            self.sent += 1


async def serve_primary(router: RouterClient, model: str, version: str) -> None:
    """Back to v1 serving, nothing in shadow: the state before the incident."""
    route = await router.get_route(model)
    await router.set_route(
        model,
        RouteUpdate(
            primary_version=version, generation=route.generation + 1, updated_by="bench-reset"
        ),
    )


async def state_of(handle: WorkflowHandle[Any, IncidentState]) -> IncidentState:
    state: IncidentState = await handle.query(QUERY_STATE, result_type=IncidentState)
    return state


async def first_pass(
    client: Client, handle: WorkflowHandle[Any, IncidentState], timeout_s: float = 120
) -> RampStepProgress:
    """The ramp step's progress once one of its analyses has passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        canary = (await state_of(handle)).canary
        if canary is not None and canary.state != "ramping":
            raise RuntimeError(f"the canary ended before passing: {canary.state}")
        if canary is not None and canary.step_workflow_id is not None:
            progress: RampStepProgress = await client.get_workflow_handle(
                canary.step_workflow_id
            ).query(QUERY_CANARY_PROGRESS, result_type=RampStepProgress)
            if progress.breaches:
                raise RuntimeError(f"the fair candidate breached: {progress.latest}")
            if progress.passes:
                return progress
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no analysis passed within {timeout_s:.0f}s")


async def rolled_back(router: RouterClient, model: str, timeout_s: float = 180) -> datetime:
    """When ``GET route`` first shows the canary gone and everyone on the fallback."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        route = await router.get_route(model)
        if route.serving is Serving.FALLBACK and route.candidate_version is None:
            return datetime.now(UTC)
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"the router still ramps the candidate after {timeout_s:.0f}s")


async def inject_regression(router: RouterClient, models: Models) -> datetime:
    """Redeploy the same version names, the candidate's now pointing at the biased model."""
    files = models.files
    await deploy_credit(
        router,
        files.model_id,
        {files.version: files.artifact_name, CANDIDATE: models.regressed},
        files.version,
    )
    return datetime.now(UTC)


async def first_regressed_decision(
    router: RouterClient, model: str, deployed: datetime
) -> datetime:
    """T0: the first candidate decision stamped after the deploy returned.

    The router stamps a decision before scoring it and installs the new artifact before
    answering the deploy, so every candidate decision from then on is the regressed one.
    """
    for _ in range(100):
        found = await router.decisions(model, since=deployed, served_by=Serving.CANDIDATE, limit=1)
        if found:
            return found[0].at
        await asyncio.sleep(POLL_S)
    raise RuntimeError("the regressed candidate logged no decision")


async def one_rollback(
    client: Client,
    router: RouterClient,
    models: Models,
    applicants: pd.DataFrame,
    queue: str,
) -> RollbackRun:
    files = models.files
    await serve_primary(router, files.model_id, files.version)
    incident = incident_input(models)
    handle: WorkflowHandle[Any, IncidentState] = await client.start_workflow(
        WORKFLOW_TYPE,
        incident,
        id=incident.incident_id,
        task_queue=queue,
        result_type=IncidentState,
    )
    traffic = Traffic(router, files.model_id, applicants)
    async with traffic.running():
        before = await first_pass(client, handle)
        deployed = await inject_regression(router, models)
        t1 = await rolled_back(router, files.model_id)
    t0 = await first_regressed_decision(router, files.model_id, deployed)
    final = await asyncio.wait_for(handle.result(), timeout=60)
    canary = final.canary
    assert canary is not None and canary.state == "rolled_back", final.outcome
    breach: CanaryAnalysis | None = canary.breach
    assert breach is not None
    route = await router.get_route(files.model_id)
    regressed = await router.decisions(
        files.model_id, since=t0, until=breach.until, served_by=Serving.CANDIDATE, limit=100_000
    )
    return RollbackRun(
        incident_id=incident.incident_id,
        t0=t0,
        look_at=breach.until,
        t1=t1,
        router_applied=route.updated_at,
        deploy_to_first_decision_ms=(t0 - deployed).total_seconds() * 1000,
        looks_before=before.looks,
        passes_before=before.passes,
        looks_to_breach=breach.look - before.looks,
        candidate_decisions=sum(breach.analysis.samples[Side.CANDIDATE.value].values()),
        regressed_decisions=len(regressed),
        decisions_per_s=traffic.per_second,
        headline=breach.analysis.headline,
    )


async def direct_flip_s(router: RouterClient, model: str, version: str, times: int = 10) -> float:
    """Baseline: the router's own flip, PUT route to fallback then GET until it shows."""
    seconds = []
    for _ in range(times):
        await serve_primary(router, model, version)
        route = await router.get_route(model)
        start = time.perf_counter()
        await router.set_route(
            model,
            RouteUpdate(
                serving=Serving.FALLBACK,
                primary_version=version,
                shadow_versions=[version],
                generation=route.generation + 1,
                updated_by="bench-direct",
            ),
        )
        shown = await router.get_route(model)
        while shown.serving is not Serving.FALLBACK:
            shown = await router.get_route(model)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


async def rollback_section(
    models: Models, scratch: Path, runs: int
) -> tuple[list[RollbackRun], float]:
    """The runs on the whole embedded stack, and the baseline: the router's own flip, in
    seconds (median)."""
    applicants = read_dataset(models.files.validation_csv)
    results: list[RollbackRun] = []
    begin = time.perf_counter()
    async with EmbeddedStack(stack_settings(scratch / "stack", models)) as stack:
        settings = stack.settings
        print(f"embedded stack up in {time.perf_counter() - begin:.1f}s")
        client = await connect(settings)
        trail_engine = make_engine(settings.resolved_database_url)
        trail = AuditTrail(trail_engine)
        try:
            async with RouterClient(settings.router_url, TOKEN) as router:
                files = models.files
                await deploy_credit(
                    router, files.model_id, {files.version: files.artifact_name}, files.version
                )
                flip = await direct_flip_s(router, files.model_id, files.version)
                print(f"router flip (PUT route, GET until it shows) median {flip * 1000:.1f}ms")
                for run in range(runs):
                    result = await one_rollback(
                        client, router, models, applicants, settings.task_queue
                    )
                    print_run(run + 1, result, trail)
                    results.append(result)
                    stack.check_alive()
        finally:
            trail_engine.dispose()
    return results, flip


def act_timeline(trail: AuditTrail, run: RollbackRun) -> str:
    """What the incident recorded between the breaching look and T1, in ms after the look."""
    steps = []
    for record in trail.records(run.incident_id):
        if not run.look_at <= record.at <= run.t1:
            continue
        label = record.kind
        if label.startswith("activity."):
            activity_type = json.loads(record.detail)["activity_type"]
            label = f"{activity_type} {label.removeprefix('activity.')}"
        steps.append(f"{label} +{(record.at - run.look_at).total_seconds() * 1000:.0f}")
    return ", ".join(steps)


def print_run(number: int, run: RollbackRun, trail: AuditTrail) -> None:
    print(
        f"run {number}: detect_to_rollback {run.detect_to_rollback_s:.2f}s = evidence "
        f"{run.evidence_s:.2f}s (T0 to the breaching look) + act {run.act_s:.2f}s "
        f"(look to GET route showing the fallback); the router applied the route at "
        f"+{(run.router_applied - run.t0).total_seconds():.2f}s"
    )
    print(
        f"  looks: {run.looks_before} before the regression ({run.passes_before} passed), "
        f"the breach on look {run.looks_to_breach} after it; its window held "
        f"{run.candidate_decisions} candidate decisions, {run.regressed_decisions} of them "
        f"regressed; traffic {run.decisions_per_s:.0f} decisions/s; T0 = first regressed "
        f"decision in the log, {run.deploy_to_first_decision_ms:.0f}ms after the deploy returned"
    )
    print(f"  breaching analysis: {run.headline}")
    print(f"  act, ms after the look: {act_timeline(trail, run)}")

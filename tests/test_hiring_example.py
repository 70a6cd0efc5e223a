"""The hiring example, end to end: the whole ethical-audit runbook on a model that is not
the demo's, routed by an OpenFeature flag and judged on decisions its own service reports.

Real parts throughout: the example's data, training script, manifest and fallback rules
(examples/hiring/); the API over loopback HTTP (registration, the incident opened by the
commander, sign-offs by each approver's token, decision and outcome ingestion); the
production worker on the time-skipping server; the team's service with
the real OpenFeature SDK and flagd provider in in-process file mode, reading the flag
file a declared ``flagd-file`` target names. Fairlane never calls the service: the
route changes only in the flag file, and the service follows it.

The canary judges with every stock threshold and minimum, and bakes for hours of the
server's time (skipped by ``env.sleep``): the service stamps its decisions with the
server's time, which runs that far ahead of the wall clock, so the API under test
accepts decisions up to two days ahead of its own clock
(``reported_decision_max_ahead_s``; production keeps 5 minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import pytest_asyncio
import yaml
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.tokens import Role, issue_token
from audit.configure import open_trail
from audit.trail import AuditTrail
from config import Settings
from config.targets import FlagdFileTarget
from contracts.fallback_rules import parse_rules
from contracts.incident import IncidentState, Phase
from contracts.model import ModelManifest
from contracts.watch import QUERY_WATCH, WatchState, watch_workflow_id
from decisions.store import window
from decisions.tables import DECISIONS
from examples.hiring.data import generate_applicants
from examples.hiring.service import HiringService, Served
from examples.hiring.train import HiringFiles, deploy_to_flag_file, prepare
from router.rules import RulesEngine
from stack.loopback import free_port
from stack.worker import build_worker
from store.db import create_tables, make_engine
from targets.flagd_flag import flag_key
from tests.fixtures.incidents import (
    TEST_DECISION_MAX_AGE_S,
    TEST_DECISION_PUBLIC,
    TEST_DECISION_SEED,
    state_of,
)
from tests.fixtures.services import serve, time_skipping_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
FLAGS = "hiring-flags"
WAIT_S = 15.0
BAKE = timedelta(hours=2)
LOOK = timedelta(minutes=30)
"""The canary's analysis interval: one wave of applicants per look."""
WAVE = 7_500
"""Applicants per look. At 50% a 2-hour step (4 looks) gives the candidate ~15,000
decisions, ~150 for each 1% intersection (indigenous x sex): the stock minimum of 200
per group is reached after an extension, as a real canary of a small group would be."""
SERVER_CLOCK_AHEAD_S = 2 * 24 * 3600
"""How far ahead of the wall clock the time-skipping server may run by the end."""
RUNBOOK_STEPS = {
    "enforce-fallback",
    "brief-contained",
    "dissect-and-attribute",
    "remediate",
    "sandbox-validate",
    "impact-assessment",
    "stakeholder-signoff",
    "canary",
    "monitor",
}
TEAM_FLAG = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}
"""Another flag of the team's, in the same file: Fairlane's writes must keep it."""
SIGNERS = [
    ("lee.legal", "legal"),
    ("kai.legal", "legal"),
    ("cam.compliance", "compliance"),
    ("eve.exec", "executive"),
    ("cora.comms", "communications"),
]


def runbook() -> str:
    """playbooks/ethical-audit.yaml, every step kept, sized for a decision-only model and
    a test: the stock amount gates stay (validation and the canary switch off tests on
    outcomes the model does not make); sandbox bounds loose enough for 99.96% intervals
    on a 2% group in test-sized data; the canary keeps every stock threshold and minimum
    and ramps in two 2-hour steps instead of five 7-day ones."""
    book = yaml.safe_load((ROOT / "playbooks" / "ethical-audit.yaml").read_text())
    steps = {step["name"]: step for step in book["steps"]}
    attribution = next(
        s for s in steps["dissect-and-attribute"]["steps"] if s["name"] == "attribution"
    )
    assert "outcome" not in attribution  # the stock step explains whatever the model makes
    attribution["sample_size"] = 600
    steps["sandbox-validate"]["gates"].update(
        # judged on 99.96% interval bounds for every race x sex intersection, the smallest
        # about 1% of 12,000 validation rows: estimates ~0.75 and ~0.1, bounds ~0.4, ~0.5
        min_disparate_impact_ratio=0.3,
        max_equalized_odds_difference=0.6,
        min_group_size=20,  # the smallest intersection has ~25 of its rarer outcome
        max_accuracy_loss=0.05,
        bootstrap_samples=100,
    )
    steps["remediate"]["max_accuracy_loss"] = 0.05
    stock = dict(steps["canary"]["metrics"])
    assert all(value is not None for value in stock.values())  # every test on, stock values
    steps["canary"].update(
        ramp=[50, 100],
        bake="2h",
        analysis_interval="30m",
        extend_by="1h",
        inconclusive_limit=3,
        shadow_period="30d",
    )
    assert steps["canary"]["metrics"] == stock
    return yaml.safe_dump(book, sort_keys=False)


@dataclass
class Stack:
    env: WorkflowEnvironment
    url: str
    tokens: dict[str, str]
    trail: AuditTrail
    flag_file: Path
    queue: str
    engine: Engine

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def route(self, model: str) -> dict[str, Any]:
        """The model's flag as it is in the file now."""
        flag: dict[str, Any] = json.loads(self.flag_file.read_text())["flags"][flag_key(model)]
        return flag


@pytest.fixture(scope="module")
def hiring(tmp_path_factory: pytest.TempPathFactory) -> HiringFiles:
    return prepare(tmp_path_factory.mktemp("hiring"), training_rows=4_000, validation_rows=12_000)


@pytest_asyncio.fixture
async def stack(hiring: HiringFiles, tmp_path: Path) -> AsyncIterator[Stack]:
    """Time-skipping server, worker, API; the model deployed at its flag and registered."""
    flag_file = tmp_path / "flags.json"
    flag_file.write_text(json.dumps({"flags": {"checkout.new-ui": TEAM_FLAG}}))
    model = hiring.manifest
    await deploy_to_flag_file(flag_file, model, FLAGS)
    queue = f"hiring-{uuid.uuid4().hex[:8]}"
    playbooks = tmp_path / "playbooks"  # the team's own ethical-audit, before the shipped one
    playbooks.mkdir()
    (playbooks / "ethical-audit.yaml").write_text(runbook())
    async with time_skipping_server() as env:
        settings = Settings(
            data_dir=tmp_path / "fairlane",
            artifacts_dir=hiring.artifacts_dir,
            temporal_address=env.client.service_client.config.target_host,
            task_queue=queue,
            playbooks_dir=playbooks,
            router_token=SecretStr("unused-gateway-token"),
            routing_targets={FLAGS: FlagdFileTarget(kind="flagd-file", path=flag_file)},
            decision_signing_key=TEST_DECISION_SEED,
            decision_public_key=TEST_DECISION_PUBLIC,
            decision_max_age_s=TEST_DECISION_MAX_AGE_S,
            reported_decision_max_ahead_s=SERVER_CLOCK_AHEAD_S,
        )
        people = {
            "admin": [Role.ADMIN],
            "dana.ic": [Role.INCIDENT_COMMANDER],
            "scorer": [Role.DECISION_REPORTER],
            "catalog": [Role.AUDITOR],
            **{who: [Role(role)] for who, role in SIGNERS},
        }
        tokens = {
            who: issue_token(settings.resolved_tokens_file, who, roles)
            for who, roles in people.items()
        }
        engine = make_engine(settings.resolved_database_url)
        create_tables(engine)
        trail = open_trail(engine, settings)
        async with build_worker(env.client, settings, trail):
            with serve(create_app(settings), free_port()) as url:
                running = Stack(env, url, tokens, trail, flag_file, queue, engine)
                async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                    registered = await client.post(
                        "/v1/models",
                        headers=running.headers("admin"),
                        json=model.model_dump(mode="json"),
                    )
                    assert registered.status_code == 201, registered.text
                yield running


@pytest.fixture
def service(stack: Stack, hiring: HiringFiles) -> Iterator[HiringService]:
    team = HiringService(
        model=hiring.manifest.id,
        flag_file=stack.flag_file,
        artifacts_dir=hiring.artifacts_dir,
        fairlane_url=stack.url,
        reporter_token=stack.tokens["scorer"],
        reader_token=stack.tokens["catalog"],
    )
    yield team
    team.close()


class Traffic:
    """Waves of fresh applicants through the team's service, each reported to Fairlane
    with the server's time, and with the decisions of the versions kept in shadow."""

    def __init__(self, stack: Stack, service: HiringService) -> None:
        self.stack = stack
        self.service = service
        self.wave = 0
        self.live = 0
        self.shadow: dict[str, int] = {}  # shadowed version -> decisions reported
        self.first_at: datetime | None = None

    @property
    def reported(self) -> int:
        return self.live + sum(self.shadow.values())

    async def wave_of(self, n: int, outcomes: bool = True) -> list[Served]:
        self.wave += 1
        applicants = generate_applicants(n, 1_000 + self.wave)
        now = await self.stack.env.get_current_time()
        self.first_at = self.first_at or now
        served = await asyncio.to_thread(self._serve_and_report, applicants, now, outcomes)
        self.live += len(served)
        for shadowed in served:
            for version, _ in shadowed.shadows:
                self.shadow[version] = self.shadow.get(version, 0) + 1
        return served

    def _serve_and_report(
        self, applicants: pd.DataFrame, at: datetime, outcomes: bool
    ) -> list[Served]:
        served = self.service.serve(applicants)
        manifest = self.service.manifest()
        shadows = sum(len(s.shadows) for s in served)
        assert self.service.report(manifest, applicants, served, at) == len(served) + shadows
        if outcomes:
            self.service.report_outcomes(applicants, manifest.label or "qualified")
        return served


async def flag_generation_served(service: HiringService, generation: int) -> dict[str, Any]:
    """The route as the service's provider serves it once it has read ``generation``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        details = await asyncio.to_thread(service.route, "probe")
        if details.flag_metadata.get("generation") == generation:
            return dict(details.value)
        assert loop.time() < deadline, f"provider never served generation {generation}"
        await asyncio.sleep(0.05)


async def wait_for(condition: Any, what: str, timeout_s: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def phase_or_end(
    handle: WorkflowHandle[object, IncidentState], phase: Phase, timeout_s: float
) -> IncidentState:
    """The state once the incident reaches ``phase``; fails at once if it ends instead."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        state = await state_of(handle)
        if state.phase == phase:
            return state
        assert not state.phase.closed, f"ended {state.phase}: {state.outcome}: {state.steps}"
        assert loop.time() < deadline, f"phase stayed {state.phase}, wanted {phase}"
        await asyncio.sleep(0.1)


def sides(served: list[Served]) -> dict[str, int]:
    return dict(pd.Series([s.serving for s in served]).value_counts())


async def test_the_ethical_audit_runbook_takes_the_hiring_model_from_containment_to_monitor(
    stack: Stack, service: HiringService, hiring: HiringFiles
) -> None:
    model = hiring.manifest
    traffic = Traffic(stack, service)
    before = await traffic.wave_of(400)
    assert sides(before) == {"primary": 400}
    assert {s.version for s in before} == {"v1"}

    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        opened = await client.post(
            "/v1/incidents",
            headers=stack.headers("dana.ic"),
            json={
                "model": model.id,
                "playbook": "ethical-audit",
                "severity": "sev1",
                "summary": "black applicants hired at under half the rate of others at "
                "equal test scores",
            },
        )
    assert opened.status_code == 202, opened.text
    incident_id = opened.json()["incident_id"]
    handle: WorkflowHandle[object, IncidentState] = stack.env.client.get_workflow_handle(
        incident_id, result_type=IncidentState
    )
    try:
        await _run_incident(stack, service, traffic, handle, model.id)
    finally:
        await _stop_leftovers(stack, handle, model)


async def _run_incident(
    stack: Stack,
    service: HiringService,
    traffic: Traffic,
    handle: WorkflowHandle[object, IncidentState],
    model: str,
) -> None:
    incident_id = handle.id

    # E: contained. The flag file says fallback, and the service answers by the rules.
    async def contained() -> bool:
        return bool(stack.route(model)["defaultVariant"] == "fallback")

    await wait_for(contained, "containment in the flag file")
    flag = stack.route(model)
    generations = [1, flag["metadata"]["generation"]]
    assert flag["metadata"]["shadowVersions"] == "v1"
    assert await flag_generation_served(service, flag["metadata"]["generation"]) == {
        "serving": "fallback"
    }
    during = await traffic.wave_of(400)
    assert sides(during) == {"fallback": 400}
    assert {s.version for s in during} == {service.rules.version}
    assert {s.shadows[0][0] for s in during} == {"v1"}  # the biased model, in shadow
    assert sum(s.shadows[0][1] for s in during) > 0

    # T, H, I, C, A: the audits find the proxy, remediation drops it, validation passes.
    state = await phase_or_end(handle, Phase.AWAITING_SIGNOFF, timeout_s=150)
    findings = state.findings
    assert findings.provenance is not None
    assert "commute_zone" in findings.provenance.suspected_proxies
    assert findings.attribution is not None
    assert "commute_zone" in findings.attribution.gap_drivers
    assert findings.confirmed_proxies == ["commute_zone"]
    assert findings.candidate is not None
    assert findings.candidate.strategy.startswith("drop_proxies")
    assert findings.validation is not None and findings.validation.verdict == "pass"
    assessment = findings.assessment
    assert assessment is not None
    assert b"commute_zone" in Path(assessment.markdown).read_bytes()  # noqa: ASYNC240
    candidate = findings.candidate.version
    assessment_digest = assessment.digest
    assert stack.route(model)["defaultVariant"] == "fallback"  # still contained

    # Each approver signs off through the API with their own token; the API signs the
    # decision for the incident's open step, bound to the assessment they read.
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        for who, role in SIGNERS:
            approved = await client.post(
                f"/v1/incidents/{incident_id}/signoffs",
                headers=stack.headers(who),
                json={"role": role, "decision": "approve", "assessment_digest": assessment_digest},
            )
            assert approved.status_code == 200, approved.text

    # L: the canary ramps at the flag; the service splits by applicant and reports.
    percents: list[float] = []
    candidate_served = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 600
    while True:
        assert loop.time() < deadline, f"no promotion; looks so far: {percents}"
        state = await state_of(handle)
        flag = stack.route(model)
        if (
            flag["defaultVariant"] == "primary"
            and flag["variants"]["primary"]["version"] == candidate
        ):
            break  # promoted
        assert state.phase is Phase.RUNNING, f"incident {state.phase}: {state.outcome}"
        percent = flag["metadata"].get("canaryPercent")
        if percent and (not percents or percents[-1] != percent):
            assert flag["defaultVariant"] == "fallback"  # the rest stays on the rules
            percents.append(percent)
            generations.append(flag["metadata"]["generation"])
            await flag_generation_served(service, flag["metadata"]["generation"])
        if percent:
            served = await traffic.wave_of(WAVE)
            counted = sides(served)
            candidate_served += counted.get("candidate", 0)
            if percent < 100:
                assert set(counted) == {"candidate", "fallback"}, counted
        await stack.env.sleep(LOOK)
    assert percents == [50, 100]
    assert candidate_served > 0

    # The looks judged the reported decisions, and each step ended on a passing look.
    looks = [
        json.loads(r.detail)
        for r in stack.trail.records(incident_id)
        if r.kind == "canary.analysis"
    ]
    assert looks and all(look["provider"] for look in looks)
    assert max(look["decisions"] for look in looks) > 0
    _every_stock_test_judged(stack, incident_id)
    finished_steps = [
        json.loads(r.detail)
        for r in stack.trail.records(incident_id)
        if r.kind == "canary.step_finished"
    ]
    assert [(f["percent"], f["result"]) for f in finished_steps] == [
        (50, "passed"),
        (100, "passed"),
    ], finished_steps

    # D: promoted, the biased version in shadow, and the monitor armed.
    promoted = stack.route(model)
    generation = promoted["metadata"]["generation"]
    generations.append(generation)
    assert generations == sorted(set(generations)), generations  # a new write at each phase
    assert promoted["metadata"]["shadowVersions"] == "v1"  # the biased version, in shadow
    assert "candidate" not in promoted["variants"]
    assert await flag_generation_served(service, generation) == {
        "serving": "primary",
        "version": candidate,
    }
    after = await traffic.wave_of(300, outcomes=False)
    assert sides(after) == {"primary": 300}
    assert {s.version for s in after} == {candidate}

    async def finished() -> bool:
        return (await state_of(handle)).phase.closed

    await wait_for(finished, "the incident to close")
    final = await state_of(handle)
    assert final.phase is Phase.RESOLVED, final.outcome
    team_flag = json.loads(stack.flag_file.read_text())["flags"]["checkout.new-ui"]
    assert team_flag == TEAM_FLAG  # every write kept the team's own flag
    trail = stack.trail.records(incident_id)
    kinds = {r.kind for r in trail}
    assert {s.name for s in final.steps if s.status == "succeeded"} >= RUNBOOK_STEPS
    assert {"signoff.decided", "canary.analysis", "canary.promoted"} <= kinds, sorted(kinds)
    succeeded = {r.step for r in trail if r.kind == "step.succeeded"}
    assert succeeded >= RUNBOOK_STEPS, RUNBOOK_STEPS - succeeded
    signed_off = [json.loads(r.detail) for r in trail if r.kind == "signoff.decided"]
    assert {d["assessment_digest"] for d in signed_off} == {assessment_digest}
    assert len(signed_off) == len(SIGNERS)
    assert {r.actor for r in trail if r.kind == "signoff.decided"} == {w for w, _ in SIGNERS}

    watch = await stack.env.client.get_workflow_handle(watch_workflow_id(model)).query(
        QUERY_WATCH, result_type=WatchState
    )
    assert watch.status == "monitoring", watch.status
    assert watch.memory.armed_by is not None
    batches = [
        json.loads(r.detail)
        for r in stack.trail.records(watch_workflow_id(model))
        if r.kind == "decisions.reported"
    ]
    assert sum(b["decisions"] for b in batches) == traffic.reported  # every decision reported
    _shadow_logged_not_live(stack, traffic, model, candidate)


def _every_stock_test_judged(stack: Stack, incident_id: str) -> None:
    """The last look of each step passed on the stock thresholds and minimums: every test
    judged, but the amount test a decision-only model cannot feed and, at 100%, the
    guards, which have no stable side left to compare with."""
    last_look: dict[float, dict[str, Any]] = {}
    percent = 0.0
    for record in stack.trail.records(incident_id):
        detail = json.loads(record.detail)
        if record.kind == "canary.step_started":
            percent = detail["percent"]
        elif record.kind == "canary.analysis":
            last_look[percent] = detail["analysis"]
    assert sorted(last_look) == [50, 100], sorted(last_look)
    guards = {"approval_rate_shift", "error_rate_increase"}
    for step, analysis in last_look.items():
        assert analysis["verdict"] == "pass", analysis["headline"]
        assert min(analysis["samples"]["candidate"].values()) >= 200  # the stock minimum
        verdicts: dict[str, set[str]] = {r["metric"]: set() for r in analysis["results"]}
        for result in analysis["results"]:
            verdicts[result["metric"]].add(result["verdict"])
        assert verdicts.pop("conditional_disparity") == {"not_applicable"}
        judged_guards = {"pass"} if step < 100 else {"not_applicable"}
        for guard in guards:
            assert verdicts.pop(guard) == judged_guards, (step, analysis["results"])
        assert verdicts.pop("disparate_impact_ratio") == {"pass"}
        assert verdicts.pop("demographic_parity_difference") == {"pass"}
        assert set(verdicts) == {"equalized_odds_tpr_difference", "equalized_odds_fpr_difference"}
        for advisory in verdicts.values():  # on ground truth: judged, never breached
            assert "pass" in advisory and advisory <= {"pass", "inconclusive"}, advisory


def _shadow_logged_not_live(stack: Stack, traffic: Traffic, model: str, candidate: str) -> None:
    """The shadow decisions are in Fairlane's decision log as shadow, and a window over
    the whole test (the canary's read, with the candidate) counts only the live ones."""
    assert traffic.shadow and set(traffic.shadow) == {"v1"}, traffic.shadow
    with Session(stack.engine) as session:
        rows = session.execute(
            select(DECISIONS.c.version, DECISIONS.c.decision_id).where(
                DECISIONS.c.model == model, DECISIONS.c.shadow.is_(True)
            )
        ).all()
        assert len(rows) == traffic.shadow["v1"]
        assert {version for version, _ in rows} == {"v1"}
        assert all(decision_id.endswith("/shadow/v1") for _, decision_id in rows)
        assert traffic.first_at is not None
        everything = window(
            session, model, candidate, traffic.first_at, traffic.first_at + timedelta(days=2)
        )
    assert everything.decisions == traffic.live


async def _stop_leftovers(
    stack: Stack, handle: WorkflowHandle[object, IncidentState], model: ModelManifest
) -> None:
    """Terminate what a promotion leaves running (the shadow's retirement timer) or a
    failed test left open, so the server shuts down cleanly."""
    retire = stack.env.client.get_workflow_handle(
        f"{handle.id}/retire-shadow/{model.primary_version}"
    )
    watch = stack.env.client.get_workflow_handle(watch_workflow_id(model.id))
    for running in (retire, handle, watch):
        with contextlib.suppress(RPCError):
            if (await running.describe()).status == WorkflowExecutionStatus.RUNNING:
                await running.terminate("test over")


def test_the_example_s_fallback_rules_fit_its_manifest_and_read_no_group_or_proxy(
    hiring: HiringFiles,
) -> None:
    manifest = hiring.manifest
    rules = parse_rules(
        hiring.rules.read_text(),
        {f.name: f.type for f in manifest.features},
        decision=True,
        amount=False,
    )
    read = {feature for rule in rules.rules for feature in rule.when}
    assert read and not read & {"race", "sex", "commute_zone"}
    engine = RulesEngine(rules, decides=True, grants=False)
    applicants = pd.DataFrame(
        {
            "years_experience": [6.0, 2.0, 2.0, 0.0],
            "test_score": [61.0, 56.0, 56.0, 85.0],
            "degree_level": ["none", "master", "none", "none"],
        }
    )
    decided = engine.score(applicants).decision
    assert decided is not None and decided.tolist() == [True, True, False, True]

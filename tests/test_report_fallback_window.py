"""The report's "during containment" row: what the fallback really decided while it served.

Read by an activity from the model's declared decision source through the worker's
metrics providers (decisions reported to Fairlane for a hiring model; the reference
router's decision log for an incident on the time-skipping server), judged group against
group with counts and intervals; with no decision to judge the row says why and shows
no number."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.fallback_window import FallbackWindowActivities
from audit.trail import AuditTrail
from config import Settings
from contracts.fallback_window import FallbackWindow, FallbackWindowRequest
from contracts.incident import IncidentState, Phase
from contracts.routing import Serving
from contracts.severity import Severity
from decisions.records import DecisionRecord
from decisions.store import append
from demo.dataset import generate_applicants
from demo.scenario import applicant_from
from playbooks.loader import load_playbook_text
from registry.service import ModelRegistry
from reports.complaint import complaint_section
from reports.evidence import Evidence
from reports.formatting import MISSING
from stack.worker import metrics_providers
from store.db import create_tables, make_engine
from tests.fixtures.decisions import MODEL, T0, hiring_manifest
from tests.fixtures.incidents import decide, incident_input, start_incident, wait_for_phase
from tests.fixtures.services import RouterService, running_worker

SINCE, UNTIL = T0, T0 + timedelta(hours=2)
FAVOURED, HELD_BACK = "race=white|sex=m", "race=black|sex=f"


@pytest.fixture
def activities(tmp_path: Path) -> Iterator[tuple[FallbackWindowActivities, Engine]]:
    settings = Settings(data_dir=tmp_path, router_token="t")
    engine = make_engine(settings.resolved_database_url)
    create_tables(engine)
    registry = ModelRegistry(engine)
    registry.register(hiring_manifest(), "admin")  # decisions: reported to Fairlane
    providers = metrics_providers(settings, settings.target_resolver(), registry, engine)
    yield FallbackWindowActivities(providers, registry.get), engine
    engine.dispose()


def report(engine: Engine, group: str, count: int, approved: int, start: datetime) -> None:
    """``count`` decisions the fallback made for ``group``, ``approved`` of them yes."""
    with Session(engine) as session:
        append(
            session,
            [
                DecisionRecord(
                    decision_id=f"{group}-{start:%H%M}-{i}", model=MODEL, version="fallback",
                    served_by=Serving.FALLBACK, at=start + timedelta(seconds=10 * i),
                    group=group, stratum="junior|north", decision=i < approved,
                )
                for i in range(count)
            ],
        )  # fmt: skip


def request(since: datetime = SINCE, until: datetime = UNTIL) -> FallbackWindowRequest:
    return FallbackWindowRequest(
        incident_id="inc-fallback-1",
        model=MODEL,
        target="gateway",
        since=since,
        until=until,
        policy=hiring_manifest().monitoring,
    )


def state_with(window: FallbackWindow | None) -> IncidentState:
    state = IncidentState(
        incident_id="inc-fallback-1",
        model=MODEL,
        playbook="p",
        playbook_version="1",
        severity=Severity.SEV1,
        summary="hiring gap",
        commander="ic",
        opened_at=T0,
        phase=Phase.AWAITING_SIGNOFF,
    )
    state.findings.fallback_window = window
    return state


def during_rows(state: IncidentState) -> list[list[str]]:
    table = complaint_section(Evidence(state, None, None, None, None)).tables[0]
    return [row for row in table.rows if row[0].startswith("during containment")]


async def test_the_row_shows_each_groups_decisions_and_the_gaps_with_intervals(
    activities: tuple[FallbackWindowActivities, Engine],
) -> None:
    activity, engine = activities
    report(engine, FAVOURED, 300, 210, SINCE)  # 70% approved while the fallback served
    report(engine, HELD_BACK, 300, 120, SINCE)  # 40%
    report(engine, HELD_BACK, 80, 0, SINCE - timedelta(hours=1))  # before containment

    window = await ActivityEnvironment().run(activity.analyse_fallback_window, request())

    assert (window.provider, window.decisions, window.unavailable) == ("ingest", 600, None)
    assert window.analysis is not None
    assert window.analysis.samples["candidate"] == {FAVOURED: 300, HELD_BACK: 300}
    ratio = next(r for r in window.analysis.results if r.metric.value == "disparate_impact_ratio")
    estimate, bounds = ratio.estimate, ratio.interval
    assert estimate == pytest.approx(0.4 / 0.7, abs=1e-6)
    assert estimate is not None and bounds is not None and bounds.lower < estimate < bounds.upper

    rows = during_rows(state_with(window))
    assert rows[0][2] == "decisions by group" and "300" in rows[0][5]
    assert all("600 decisions" in row[1] and "ingest" in row[1] for row in rows)
    gap = next(row for row in rows if row[2].startswith("disparate_impact_ratio"))
    assert gap[3] == f"{estimate:.3f}"
    assert gap[4] == f"[{bounds.lower:.3f}, {bounds.upper:.3f}]"
    assert FAVOURED in gap[5] and HELD_BACK in gap[5]


async def test_with_no_decision_in_the_window_the_row_says_so_and_shows_no_number(
    activities: tuple[FallbackWindowActivities, Engine],
) -> None:
    activity, engine = activities
    report(engine, FAVOURED, 50, 30, SINCE - timedelta(hours=3))  # all before containment

    window = await ActivityEnvironment().run(activity.analyse_fallback_window, request())

    assert window.decisions == 0 and window.analysis is None
    assert window.unavailable == "ingest holds no live decision of the window"
    [row] = during_rows(state_with(window))
    assert row[2] == "no numbers: ingest holds no live decision of the window"
    assert row[3:] == [MISSING, MISSING, MISSING]


def test_an_incident_whose_fallback_was_not_read_says_so() -> None:
    [row] = during_rows(state_with(None))
    assert "were not read" in row[2]
    unreadable = FallbackWindow(unavailable="the decision source could not be read: refused")
    [row] = during_rows(state_with(unreadable))
    assert row[2] == "no numbers: the decision source could not be read: refused"


PLAYBOOK = """
name: fallback-window-test
version: "1"
steps:
  - {name: contain, kind: route, serving: fallback}
  - name: keep
    kind: signoff
    subject: keep it contained
    roles: [{role: legal}]
  - {name: assess, kind: impact_assessment}
"""


async def test_the_assessment_reads_what_the_fallback_decided_at_the_router(
    time_env: WorkflowEnvironment,
    router_service: RouterService,
    trail: AuditTrail,
) -> None:
    """Real decisions through the real router while the incident is contained; the
    assessment step reads them from the model's declared source (the router's log)."""
    await router_service.reset()
    incident = incident_input(router_service, load_playbook_text(PLAYBOOK))
    ModelRegistry(trail.engine).register(incident.model, "test")
    queue = f"fallback-{uuid.uuid4().hex[:8]}"
    applicants = generate_applicants(160, 31)
    async with running_worker(time_env.client, trail, router_service, queue):
        handle = await start_incident(time_env.client, incident, queue)
        await wait_for_phase(handle, Phase.AWAITING_SIGNOFF)
        async with router_service.client() as router:
            answers = [
                await router.decide(router_service.model, applicant_from(row, f"fw-{i}"))
                for i, row in enumerate(applicants.itertuples(index=False))
            ]
        assert {a.served_by for a in answers} == {Serving.FALLBACK}
        await decide(handle, "lee.legal", "legal")
        final: IncidentState = await handle.result()
    await router_service.reset()

    assert final.phase is Phase.RESOLVED
    window = final.findings.fallback_window
    assert window is not None and window.unavailable is None, window
    # Every decision made while contained; the log counts whole minutes, so decisions
    # another test sent in the minute the route changed may be in it too.
    assert window.decisions >= len(answers)
    assert window.analysis is not None
    assert sum(window.analysis.samples["candidate"].values()) == window.decisions
    # From the route's change, to the minute (the router's log counts whole minutes).
    contained_at = final.route_now.updated_at if final.route_now else None
    assert contained_at is not None and window.since is not None
    assert window.since <= contained_at < window.since + timedelta(minutes=1)
    assert window.until is not None and window.until > datetime.now(UTC) - timedelta(minutes=5)
    assessment = final.findings.assessment
    assert assessment is not None
    markdown = Path(assessment.markdown).read_text()  # noqa: ASYNC240
    assert f"During containment, the fallback: {window.decisions:,} live decisions" in markdown

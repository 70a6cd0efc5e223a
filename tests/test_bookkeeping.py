"""Audit events of a workflow task that failed after writing them, and of its retry.

Audit events are written by local activities, which run before their workflow task
completes. When the task then fails, Temporal retries it from the last completed one,
and the retry may take another path (it sees more signals, a route already on its
fallback...). Nothing either attempt wrote may be lost or doubled: the events the
retry makes again are written once, and those it makes differently are kept, even
where they took another's place in the sequence.

Runs on Temporal's time-skipping test server with a real trail (SQLite) behind the
real ``record_audit_event(s)`` activities.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.audit_events import AuditActivities
from audit.trail import AuditTrail
from workflows.bookkeeping import Bookkeeping

TASKS_RUN: list[str] = []
"""The scenario's workflow tasks so far. Module state on purpose: it is what lets the
retried task take another path, as new signals would in production (hence the
unsandboxed workflow)."""

FIRST_TASK = ["watch.contained", "watch.incident_opened", "alert:a", "alert:b"]
RETRIED_TASK = ["watch.incident_opened", "alert:a", "alert:b", "alert:c"]
RETRIED_TWICE = "monitor.evaluation_failed"  # made twice by the retry, with the same content


@workflow.defn(sandboxed=False)
class FailsOnceAfterAuditing:
    @workflow.run
    async def run(self) -> None:
        books = Bookkeeping(workflow.info().workflow_id)
        TASKS_RUN.append(workflow.info().run_id)
        first = len(TASKS_RUN) == 1
        plan = FIRST_TASK if first else RETRIED_TASK
        for kind in [k for k in plan if not k.startswith("alert:")]:
            await books.audit(kind, detail={"incident_id": "inc-1"})
        alerts = [k.removeprefix("alert:") for k in plan if k.startswith("alert:")]
        await books.audit_batch(
            [books.event("alert.received", detail={"fingerprint": a}) for a in alerts],
            step="alerts",
        )
        if first:
            raise RuntimeError("the workflow task fails after its local activities wrote")
        for _ in range(2):
            await books.audit(RETRIED_TWICE, detail={"error": "router unreachable"})


async def test_a_retried_task_neither_loses_nor_doubles_what_the_failed_one_wrote(
    time_env: WorkflowEnvironment, trail: AuditTrail
) -> None:
    audit = AuditActivities(trail)
    TASKS_RUN.clear()
    queue = f"bookkeeping-{uuid.uuid4()}"
    async with Worker(
        time_env.client,
        task_queue=queue,
        workflows=[FailsOnceAfterAuditing],
        activities=[audit.record_audit_event, audit.record_audit_events],
    ):
        await time_env.client.execute_workflow(
            FailsOnceAfterAuditing.run, id=f"wf-{uuid.uuid4()}", task_queue=queue
        )

    assert len(TASKS_RUN) == 2, "the first workflow task did not fail and get retried"
    records = trail.records()
    said = Counter(
        f"alert:{json.loads(r.detail)['fingerprint']}" if r.kind == "alert.received" else r.kind
        for r in records
    )
    assert said == Counter(
        {
            "watch.contained": 1,  # written by the failed task only: it did happen
            "watch.incident_opened": 1,  # made by both tasks, written once
            "alert:a": 1,
            "alert:b": 1,
            "alert:c": 1,  # made by the retry only, in a place the first task had used
            RETRIED_TWICE: 2,  # the same content twice is two events, not a repeat
        }
    )
    assert trail.verify().ok

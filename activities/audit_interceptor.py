"""Auditing by construction: every activity attempt is recorded without asking it to.

A worker interceptor wraps each activity attempt: ``activity.started`` before the code
runs, then ``activity.completed`` or ``activity.failed`` (the same three outcomes are
counted in ``fairlane_activity_attempts_total``, see :mod:`activities.metrics`). An
attempt that cannot be recorded does not run (or does not count as done): it fails with
a retryable ``AuditWriteFailed``, because an unaudited side effect is worse than a late
one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError, FailureError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.metrics import count_attempt
from audit.chain import digest
from audit.trail import AuditTrail
from contracts.audit import AuditEvent

SELF_AUDITING_ACTIVITIES = frozenset({"record_audit_event", "record_audit_events"})
"""Activities whose whole job is to write an audit record; auditing them would double it."""

AUDIT_WRITE_FAILED = "AuditWriteFailed"
"""ApplicationError type of an attempt failed because its audit record could not be written."""

log = structlog.get_logger(__name__)


class AuditInterceptor(Interceptor):
    """Worker interceptor recording every activity attempt in ``trail``.

    ``identity`` names the worker in the ``actor`` of records whose activity input does
    not carry an ``actor`` of its own.
    """

    def __init__(self, trail: AuditTrail, identity: str) -> None:
        self._trail = trail
        self._identity = identity

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _AuditedActivity(next, self._trail, self._identity)


class _AuditedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, trail: AuditTrail, identity: str) -> None:
        super().__init__(next)
        self._trail = trail
        self._identity = identity

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        count_attempt("started")
        try:
            result = await self._audited(input)
        except (Exception, asyncio.CancelledError):
            count_attempt("failed")
            raise
        count_attempt("completed")
        return result

    async def _audited(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.activity_type in SELF_AUDITING_ACTIVITIES:
            return await self.next.execute_activity(input)
        attempt = _Attempt(
            info=info,
            actor=_actor(input.args, self._identity),
            inputs_digest=digest(list(input.args)),
        )
        await self._record(attempt.event("started"))
        try:
            result = await self.next.execute_activity(input)
        except (Exception, asyncio.CancelledError) as err:
            await self._record(attempt.event("failed", detail=_failure_detail(err, info)))
            raise
        await self._record(attempt.event("completed", outputs_digest=digest(result)))
        return result

    async def _record(self, event: AuditEvent) -> None:
        try:
            await asyncio.to_thread(self._trail.append, event)
        except Exception as err:
            log.error(
                "audit_write_failed",
                event_id=event.event_id,
                kind=event.kind,
                error_type=type(err).__name__,
                error=str(err),
            )
            raise ApplicationError(
                f"could not write {event.kind} to the audit trail "
                f"({type(err).__name__}: {err}); failing the attempt so it is retried "
                "rather than run unaudited",
                type=AUDIT_WRITE_FAILED,
            ) from err


@dataclass(frozen=True)
class _Attempt:
    """What every record of one activity attempt shares."""

    info: activity.Info
    actor: str
    inputs_digest: str

    def event(
        self,
        outcome: str,
        outputs_digest: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        info = self.info
        return AuditEvent(
            # Deterministic per attempt and outcome: a repeated write is a no-op.
            event_id=f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"
            f"/{info.attempt}/{outcome}",
            incident_id=incident_of(info.workflow_id) if info.workflow_id else None,
            kind=f"activity.{outcome}",
            actor=self.actor,
            step=info.activity_id.split(":", 1)[0],
            attempt=info.attempt,
            inputs_digest=self.inputs_digest,
            outputs_digest=outputs_digest,
            detail={
                "activity_type": info.activity_type,
                "task_queue": info.task_queue,
                "workflow_run_id": info.workflow_run_id,
                **(detail or {}),
            },
        )


def incident_of(workflow_id: str) -> str:
    """The incident a workflow works for: its own id, or the prefix of a child's
    ``<incident>/<purpose>/...`` id (canary ramp steps, shadow retirement)."""
    return workflow_id.split("/", 1)[0]


def _actor(args: Sequence[Any], identity: str) -> str:
    """The ``actor`` the activity's input names (a person acting), else this worker."""
    for arg in args:
        actor = arg.get("actor") if isinstance(arg, Mapping) else getattr(arg, "actor", None)
        if isinstance(actor, str) and actor:
            return actor
    return f"worker:{identity}"


def _failure_detail(err: BaseException, info: activity.Info) -> dict[str, Any]:
    error_type = err.type if isinstance(err, ApplicationError) and err.type else type(err).__name__
    return {
        "error_type": error_type,
        "error_message": err.message if isinstance(err, FailureError) else str(err),
        "non_retryable": isinstance(err, ApplicationError) and err.non_retryable,
        "will_retry": _will_retry(err, error_type, info),
    }


def _will_retry(err: BaseException, error_type: str, info: activity.Info) -> bool | None:
    """Whether Temporal will run another attempt, as far as the worker can tell.

    The server decides; the worker knows the error and the retry policy but not whether
    the schedule-to-close deadline will cut retries short, and nothing about a
    cancellation's outcome, which gives ``None``.
    """
    if isinstance(err, asyncio.CancelledError | CancelledError):
        return None
    if isinstance(err, ApplicationError) and err.non_retryable:
        return False
    policy = info.retry_policy
    if policy is None:
        return None
    if policy.maximum_attempts and info.attempt >= policy.maximum_attempts:
        return False
    return error_type not in (policy.non_retryable_error_types or ())

"""The model watch: alerts and the drift monitor, contained and turned into one incident.

One workflow per model (``watch-<model>``, see :mod:`contracts.watch` for why). It
waits for work (an alert delivery, a monitor arm or disarm, word that its incident
closed, the next evaluation) and handles it in that order:

* **alerts** are diffed against the ones it holds (:mod:`workflows.alert_ledger`);
  a new or re-fired alert while the model has no open incident contains the model
  (route to the fallback, model in shadow) and opens an incident on the policy's
  playbook, carrying the alerts. Every alert, repeat or not, is recorded on the trail
  (under the open incident when there is one) and attached to the incident;
* **the monitor** evaluates a rolling window every ``interval`` while no incident is
  open and acts after ``consecutive_breaches`` breaching evaluations in a row;
  an inconclusive evaluation neither counts nor resets the streak.

Containment comes first and does not depend on the playbook: the incident then finds
the model already on its fallback, and learns from its trigger the route to restore
if stakeholders call it a false alarm. The history stays bounded: past the policy's
``history_limit`` the watch continues as new, carrying its memory.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from contracts.alerts import AlertDelivery, AlertSource
    from contracts.audit import AuditEvent
    from contracts.monitoring import EvaluationRequest, EvaluationResult, MonitorEvaluation
    from contracts.routing import Route, RouteSpec, Serving
    from contracts.steps import Notification
    from contracts.watch import (
        EVALUATE_WINDOW,
        OPEN_INCIDENT,
        QUERY_WATCH,
        RECENT_LIMIT,
        SIGNAL_ALERTS,
        SIGNAL_ALERTS_ATTACHED,
        SIGNAL_ARM_MONITOR,
        SIGNAL_DISARM_MONITOR,
        SIGNAL_INCIDENT_CLOSED,
        SIGNAL_MANIFEST,
        WATCH_WORKFLOW,
        AlertsAttached,
        ClassifiedAlert,
        IncidentClosed,
        IncidentRef,
        IncidentTrigger,
        MonitorArm,
        MonitorDisarm,
        OpenIncidentRequest,
        WatchInput,
        WatchSettings,
        WatchState,
        watch_workflow_id,
    )
    from fairness.live import MetricVerdict
    from incidents.start import new_incident_id
    from workflows.alert_ledger import TRIGGERING, classify, forget_oldest
    from workflows.bookkeeping import Bookkeeping
    from workflows.failures import failure_text
    from workflows.options import notify_options
    from workflows.ports import RouterPort, send_notification
    from workflows.routing import contained_route

CONTAIN_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    # Bounded: the watch serves every alert of its model, so it hands a router that
    # stays down to the incident it opens, whose containment step never gives up.
    "schedule_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(seconds=10)),
}
CONTAIN_LOCALLY: dict[str, Any] = {
    **CONTAIN_OPTIONS,
    # A router that hangs must not hold the workflow task: past this a retry is a timer.
    "local_retry_threshold": timedelta(seconds=5),
}
WATCH_CONTAINS_IN_ITS_TASK = "watch-contains-in-its-task"
"""Patch id: before it, the watch contained through three activities (read, set, verify),
each a round trip and a workflow task; since, through one local activity run inside the
workflow task that received the alert (:mod:`activities.containment`)."""
WATCH_BOOKKEEPS_ELSEWHERE = "watch-bookkeeps-elsewhere"
"""Patch id: before it, the watch recorded every alert on the trail in its own workflow
task, through a local activity on its own worker; in a storm those writes held the
containment worker's workflow task slots while other models waited to be contained.
Since, an activity on the main queue records them, and the watch does not wait for it."""
WATCH_TELLS_WHEN_CONTAINMENT_FAILS = "watch-tells-when-containment-fails"
"""Patch id: before it, a watch that could not contain told nobody."""
ESCALATION_CHANNEL = "escalation"
"""Where the watch says it could not contain (the playbooks' default escalation channel)."""
OPEN_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=1)),  # until it opens
}
EVALUATE_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=30)),
}
DEFAULT_HISTORY_LIMIT = 2000
ATTACH_CHUNK = 200
"""Alerts per signal to the incident: a storm's batch stays well under payload limits."""
MONITOR_ACTOR = "fairlane:monitor"


@workflow.defn(name=WATCH_WORKFLOW)
class ModelWatchWorkflow:
    @workflow.init
    def __init__(self, watch: WatchInput) -> None:
        self._watch = watch
        self._memory = watch.memory
        self._id = watch_workflow_id(watch.model)
        self._books = Bookkeeping(self._id)
        self._router = self._router_port()
        self._deliveries: list[AlertDelivery] = []
        self._controls: list[MonitorArm | MonitorDisarm] = []
        self._closed: list[IncidentClosed] = []

    # ---- interface -------------------------------------------------------------------

    @workflow.signal(name=SIGNAL_ALERTS)
    def receive_alerts(self, delivery: AlertDelivery) -> None:
        self._deliveries.append(delivery)

    @workflow.signal(name=SIGNAL_ARM_MONITOR)
    def arm_monitor(self, arm: MonitorArm) -> None:
        self._controls.append(arm)

    @workflow.signal(name=SIGNAL_DISARM_MONITOR)
    def disarm_monitor(self, disarm: MonitorDisarm) -> None:
        self._controls.append(disarm)

    @workflow.signal(name=SIGNAL_INCIDENT_CLOSED)
    def incident_closed(self, closed: IncidentClosed) -> None:
        self._closed.append(closed)

    @workflow.signal(name=SIGNAL_MANIFEST)
    def manifest_registered(self, settings: WatchSettings) -> None:
        """The manifest as registered now: contain at its target, open on its defaults.

        The registration itself is on the model's trail (``model.registered`` or
        ``model.changed``, with the diff), written by the API that sends this.
        """
        self._watch = self._watch.model_copy(update=dict(settings))
        self._router = self._router_port()

    def _router_port(self) -> RouterPort:
        watch = self._watch
        return RouterPort(watch.router_ref(), watch.model, f"fairlane:{self._id}", self._books)

    @workflow.query(name=QUERY_WATCH)
    def state(self) -> WatchState:
        memory = self._memory
        status = (
            "holding"
            if memory.open_incident is not None
            else "monitoring"
            if memory.monitor is not None
            else "idle"
        )
        return WatchState(model=self._watch.model, status=status, memory=memory)

    # ---- the loop ----------------------------------------------------------------------

    @workflow.run
    async def run(self, watch: WatchInput) -> None:
        while True:
            with suppress(TimeoutError):  # the next evaluation is due
                await workflow.wait_condition(self._has_work, timeout=self._until_evaluation())
            while self._closed:
                await self._on_incident_closed(self._closed.pop(0))
            while self._controls:
                await self._on_control(self._controls.pop(0))
            if self._deliveries:
                batch, self._deliveries = self._deliveries, []
                await self._on_alerts(batch)
            if self._evaluation_due():
                await self._evaluate()
            if self._history_full() and not self._has_work():
                await self._books.settled()  # every alert on the trail before the run ends
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._has_work():  # nothing arrived while the books settled
                    self._memory.runs += 1
                    workflow.continue_as_new(
                        self._watch.model_copy(update={"memory": self._memory})
                    )

    def _has_work(self) -> bool:
        return bool(self._deliveries or self._controls or self._closed)

    def _until_evaluation(self) -> timedelta | None:
        due = self._memory.next_evaluation_at
        if self._memory.monitor is None or self._memory.open_incident is not None or due is None:
            return None
        return max(due - workflow.now(), timedelta(0))

    def _evaluation_due(self) -> bool:
        due = self._memory.next_evaluation_at
        return (
            self._memory.monitor is not None
            and self._memory.open_incident is None
            and due is not None
            and workflow.now() >= due
        )

    def _history_full(self) -> bool:
        policy = self._memory.monitor
        limit = policy.history_limit if policy is not None else DEFAULT_HISTORY_LIMIT
        info = workflow.info()
        return info.get_current_history_length() > limit or info.is_continue_as_new_suggested()

    # ---- monitor controls and incident lifecycle ---------------------------------------

    async def _on_control(self, control: MonitorArm | MonitorDisarm) -> None:
        memory = self._memory
        if isinstance(control, MonitorArm):
            policy = control.policy
            memory.monitor, memory.armed_by, memory.armed_at = policy, control.actor, workflow.now()
            # A (re-)armed monitor judges what serves now: old evidence no longer applies.
            memory.reference, memory.consecutive_breaches = None, 0
            memory.next_evaluation_at = workflow.now() + policy.interval
            detail = {"reason": control.reason, "policy": policy.model_dump(mode="json")}
            await self._books.audit("monitor.armed", actor=control.actor, detail=detail)
        else:
            memory.monitor = memory.armed_by = memory.armed_at = None
            memory.next_evaluation_at = memory.reference = None
            memory.consecutive_breaches = 0
            await self._books.audit(
                "monitor.disarmed", actor=control.actor, detail={"reason": control.reason}
            )

    async def _on_incident_closed(self, closed: IncidentClosed) -> None:
        memory = self._memory
        for ref in memory.incidents:
            if ref.incident_id == closed.incident_id:
                ref.closed_phase = closed.phase
        if memory.open_incident == closed.incident_id:
            memory.open_incident = None
            # The route may have changed under the incident (contained, a new primary):
            # the monitor starts afresh on whatever serves now.
            memory.reference, memory.consecutive_breaches = None, 0
            if memory.monitor is not None:
                memory.next_evaluation_at = workflow.now() + memory.monitor.interval
        await self._books.audit("watch.incident_closed", detail=closed.model_dump(mode="json"))

    # ---- alerts ------------------------------------------------------------------------

    async def _on_alerts(self, deliveries: list[AlertDelivery]) -> None:
        memory = self._memory
        now = workflow.now()
        classified = [
            ClassifiedAlert(
                alert=alert,
                kind=classify(memory.held, alert, now),
                delivery_id=delivery.delivery_id,
                sender=delivery.sender,
                received_at=delivery.received_at,
            )
            for delivery in deliveries
            for alert in delivery.alerts
        ]
        for item in classified:
            memory.counts.add(item.kind)
        triggers = [c for c in classified if c.kind in TRIGGERING]
        if triggers and memory.open_incident is None:
            names = sorted({t.alert.name for t in triggers})
            await self._contain_and_open(
                triggers[0].alert.source,
                f"{len(triggers)} alert(s) firing: {', '.join(names)}",
                alerts=triggers[:RECENT_LIMIT],
            )
        incident = memory.open_incident
        for item in classified:
            held = memory.held.get(item.alert.fingerprint)
            if held is not None and incident is not None and item.kind in TRIGGERING:
                held.incident_id = incident
        await self._record_alerts(classified, incident)
        if incident is not None:
            await self._attach(incident, classified)
        forget_oldest(memory.held)

    async def _record_alerts(self, classified: list[ClassifiedAlert], incident: str | None) -> None:
        events: list[AuditEvent] = [
            self._books.event(
                "alert.received",
                actor=item.sender,
                step="alerts",
                subject=incident,
                detail={
                    "kind": item.kind.value,
                    "watch": self._id,
                    **item.model_dump(mode="json", exclude={"kind"}),
                },
            )
            for item in classified
        ]
        queue = self._watch.bookkeeping_task_queue
        if queue is not None and workflow.patched(WATCH_BOOKKEEPS_ELSEWHERE):
            self._books.record_elsewhere(events, "alerts", queue)
        else:
            await self._books.audit_batch(events, step="alerts")

    async def _attach(self, incident: str, classified: list[ClassifiedAlert]) -> None:
        handle = workflow.get_external_workflow_handle(incident)
        for start in range(0, len(classified), ATTACH_CHUNK):
            chunk = AlertsAttached(alerts=classified[start : start + ATTACH_CHUNK])
            try:
                await handle.signal(SIGNAL_ALERTS_ATTACHED, chunk)
            except FailureError as error:
                # Closed between its last word and this batch: the alerts are on its
                # trail already; its closing signal will free the watch.
                workflow.logger.warning("could not attach alerts to %s: %s", incident, error)
                return

    # ---- the monitor ---------------------------------------------------------------------

    async def _evaluate(self) -> None:
        memory = self._memory
        policy = memory.monitor
        assert policy is not None
        until = workflow.now()
        memory.next_evaluation_at = until + policy.interval
        request = EvaluationRequest(
            model=self._watch.model,
            target=self._watch.target,
            router_url=self._watch.router_url,
            since=until - policy.window,
            until=until,
            policy=policy,
            reference=memory.reference,
        )
        try:
            result: EvaluationResult = await workflow.execute_activity(
                EVALUATE_WINDOW,
                request,
                result_type=EvaluationResult,
                activity_id=self._books.activity_id("monitor"),
                **EVALUATE_OPTIONS,
            )
        except ActivityError as error:
            await self._books.audit(
                "monitor.evaluation_failed", step="monitor", detail={"error": str(error.cause)}
            )
            return
        evaluation = result.evaluation
        memory.reference = result.reference
        if evaluation.verdict == MetricVerdict.BREACH:
            memory.consecutive_breaches += 1
        elif evaluation.verdict == MetricVerdict.PASS:
            memory.consecutive_breaches = 0
        evaluation.consecutive_breaches = memory.consecutive_breaches
        act = memory.consecutive_breaches >= policy.consecutive_breaches
        if act:
            evaluation.action = "contained"
            memory.consecutive_breaches = 0
        memory.evaluations = [*memory.evaluations, evaluation][-RECENT_LIMIT:]
        await self._books.audit(
            "monitor.evaluated",
            actor=MONITOR_ACTOR,
            step="monitor",
            detail=evaluation.model_dump(mode="json"),
        )
        if act:
            await self._contain_and_open(
                AlertSource.MONITOR,
                f"drift monitor: {policy.consecutive_breaches} breaching evaluation(s) in a row: "
                f"{evaluation.headline}",
                evaluation=evaluation,
            )

    # ---- containment and the incident -------------------------------------------------

    async def _contain_and_open(
        self,
        source: AlertSource,
        reason: str,
        *,
        alerts: list[ClassifiedAlert] | None = None,
        evaluation: MonitorEvaluation | None = None,
    ) -> None:
        """Fallback first, then the incident: harm stops before anyone reads about it."""
        memory = self._memory
        before, after = await self._contain(reason)
        now = workflow.now()
        incident_id = new_incident_id(now, f"{workflow.random().getrandbits(32):08x}")
        trigger = IncidentTrigger(
            source=source,
            watch_workflow_id=self._id,
            reason=reason,
            route_before=before,
            route_after=after,
            alerts=alerts or [],
            evaluation=evaluation,
        )
        try:
            await self._open(incident_id, trigger, reason, now)
        except ActivityError as error:
            # Only a non-retryable refusal gets here (the model was unregistered): the
            # containment stands, and the next alert or breach tries again.
            await self._books.audit(
                "watch.incident_open_failed",
                step="open-incident",
                detail={"error": str(error.cause)},
            )
            return
        memory.open_incident = incident_id
        ref = IncidentRef(incident_id=incident_id, opened_at=now, source=source, reason=reason)
        memory.incidents = [*memory.incidents, ref][-RECENT_LIMIT:]
        await self._books.audit(
            "watch.incident_opened",
            step="open-incident",
            detail={
                "incident_id": incident_id,
                "source": source.value,
                "reason": reason,
                "contained": after is not None and after.serving is Serving.FALLBACK,
                "route_generation": after.generation if after is not None else None,
            },
        )

    async def _open(
        self, incident_id: str, trigger: IncidentTrigger, reason: str, now: datetime
    ) -> None:
        """Open the incident on the armed policy's playbook, else the manifest's default."""
        policy = self._memory.monitor
        await workflow.execute_activity(
            OPEN_INCIDENT,
            OpenIncidentRequest(
                incident_id=incident_id,
                model=self._watch.model,
                playbook=policy.playbook if policy else self._watch.default_playbook,
                severity=policy.severity if policy else self._watch.default_severity,
                summary=reason[:4000],
                commander=f"fairlane:{self._id}",
                opened_at=now,
                trigger=trigger,
            ),
            result_type=str,
            activity_id=self._books.activity_id("open-incident"),
            **OPEN_OPTIONS,
        )

    async def _contain(self, reason: str) -> tuple[Route | None, Route | None]:
        """Route to the fallback with the model in shadow; the routes before and after.

        A router that stays unreachable past the retries does not stop the incident
        from opening: the escalation channel is told, the incident opens uncontained
        (``None`` for what could not be learnt), and its own containment step keeps
        trying until the router confirms the fallback.
        """
        seen: list[Route] = []

        def contained(current: Route) -> RouteSpec:
            seen.append(current)
            return contained_route(current)

        try:
            if workflow.patched(WATCH_CONTAINS_IN_ITS_TASK):
                change = await self._router.contain_in_this_task(
                    "contain", CONTAIN_LOCALLY, f"contain: {reason}"[:2000]
                )
            else:
                change = await self._router.ensure(
                    "contain", CONTAIN_OPTIONS, contained, f"contain: {reason}"[:2000]
                )
        except (ActivityError, ApplicationError) as error:
            # A local activity's non-retryable failure (an undeclared target) comes back
            # unwrapped: caught too, or it would fail the watch itself.
            failure = failure_text(error)
            await self._books.audit(
                "watch.containment_failed", step="contain", detail={"error": failure}
            )
            if workflow.patched(WATCH_TELLS_WHEN_CONTAINMENT_FAILS):
                await self._tell_containment_failed(reason, failure)
            return (seen[0] if seen else None), None
        current, after = change.before, change.after
        if not change.changed:
            return current, current
        await self._books.audit(
            "watch.contained",
            step="contain",
            detail={
                "reason": reason,
                "from": current.serving.value,
                "generation": after.generation,
                "shadow": after.shadow_versions,
            },
        )
        return current, after

    async def _tell_containment_failed(self, reason: str, failure: str) -> None:
        policy = self._memory.monitor
        severity = policy.severity if policy else self._watch.default_severity
        await send_notification(
            Notification(
                incident_id=self._id,
                channel=ESCALATION_CHANNEL,
                severity=severity.value,
                subject=f"Containment failing: {self._watch.model}",
                message=f"The watch of {self._watch.model} could not put it on its fallback "
                f"({failure}). Trigger: {reason}. The incident it opens keeps trying.",
            ),
            self._books.activity_id("contain"),
            notify_options(),
        )

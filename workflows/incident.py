"""The generic incident workflow: it interprets the playbook it was started with.

Each step is run by the module for its kind (``workflows/steps/``, chosen by an
exhaustive match in ``workflows/steps/dispatch.py``); a step that fails follows its
``on_failure`` policy (retry it, go back to an earlier step a bounded number of
times, roll the route back to what it was before the incident, escalate, or fail).
Humans reach the workflow through the ``decide_signoff`` update, whose validator
re-checks what the API already checked. Phase changes, step boundaries and human
decisions are written to the audit trail through the ``record_audit_event``
activity; every other activity is audited by the worker's interceptor.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from contracts.canary import UPDATE_CANARY_CONTROL, CanaryControl, ControlReceipt
    from contracts.channels import ChannelRef, NotificationEvent
    from contracts.containment import UPDATE_STAND_DOWN, StandDown, StandDownReceipt
    from contracts.decisions import (
        CANARY_CONTROL,
        SIGNOFF,
        STAND_DOWN,
        DecisionKind,
        SignableDecision,
        current_step,
        decision_refusal,
    )
    from contracts.incident import (
        QUERY_STATE,
        SA_PHASE,
        UPDATE_SIGNOFF,
        WORKFLOW_TYPE,
        IncidentInput,
        IncidentState,
        Phase,
        SignoffDecision,
        SignoffReceipt,
        StepRecord,
    )
    from contracts.steps import NotificationReceipt
    from contracts.watch import (
        RECENT_LIMIT,
        SIGNAL_ALERTS_ATTACHED,
        SIGNAL_INCIDENT_CLOSED,
        AlertsAttached,
        IncidentClosed,
    )
    from playbooks.base import FailureAction, RetrySpec
    from playbooks.schema import Playbook
    from playbooks.steps import NotifyStep, Step
    from workflows import signoff as signoffs
    from workflows.bookkeeping import Bookkeeping
    from workflows.canary import CanaryFailed, CanaryRamp
    from workflows.containment import Containment, ContainmentStoodDown
    from workflows.failures import failure_text
    from workflows.options import activity_options, notify_options, step_options
    from workflows.ports import IncidentPorts
    from workflows.steps.base import StepContext, StepFailed
    from workflows.steps.dispatch import run_step

# Restoring the route after a rejection must get through a router hiccup.
ROLLBACK_RETRY = RetrySpec(maximum_attempts=20, maximum_interval=timedelta(seconds=30))


@workflow.defn(name=WORKFLOW_TYPE)
class IncidentWorkflow:
    @workflow.init
    def __init__(self, incident: IncidentInput) -> None:
        self._incident = incident
        self._playbook: Playbook = incident.playbook
        self._state = IncidentState(
            incident_id=incident.incident_id,
            model=incident.model.id,
            playbook=incident.playbook.name,
            playbook_version=incident.playbook.version,
            severity=incident.severity,
            summary=incident.summary,
            commander=incident.commander,
            opened_at=incident.opened_at,
            phase=Phase.OPEN,
        )
        self._books = Bookkeeping(incident.incident_id)
        self._ports = IncidentPorts(incident, self._state, self._books)
        # Signatures of the human decisions taken: each signed decision counts once.
        self._delivered: set[str] = set()
        self._containment = Containment(
            self._state, self._books, self._ports, self._notify, self._playbook.escalation_channel
        )
        self._canary = CanaryRamp(
            incident, self._state, self._books, self._ports, self._containment, self._notify
        )
        self._steps = StepContext(
            incident=incident,
            state=self._state,
            books=self._books,
            ports=self._ports,
            containment=self._containment,
            canary=self._canary,
            notify=self._notify,
            audit=self._audit,
            set_phase=self._set_phase,
        )
        if incident.trigger is not None:
            # The watch contained the model before opening the incident: a rollback
            # restores the route it found, not the fallback it left.
            self._state.trigger = incident.trigger
            self._state.route_before = incident.trigger.route_before
            if incident.trigger.route_after is not None:
                self._ports.record_route(incident.trigger.route_after)

    # ---- interface -------------------------------------------------------------------

    @workflow.query(name=QUERY_STATE)
    def state(self) -> IncidentState:
        return self._state

    @workflow.update(name=UPDATE_SIGNOFF)
    async def decide_signoff(self, decision: SignoffDecision) -> SignoffReceipt:
        status = self._state.signoff
        assert status is not None  # the validator guarantees an open sign-off
        self._delivered_once(decision)
        role = signoffs.apply_decision(status, decision, workflow.now())
        await self._audit(
            "signoff.decided",
            actor=decision.principal,
            step=status.step,
            detail={
                "role": decision.role,
                "decision": decision.decision,
                "comment": decision.comment,
                "assessment_digest": decision.assessment_digest,
                "role_outcome": role.outcome,
                "signoff_outcome": status.outcome,
                **_signed_by(decision),
            },
        )
        return SignoffReceipt(
            accepted=True, role=role.role, role_outcome=role.outcome, signoff_outcome=status.outcome
        )

    @decide_signoff.validator
    def _validate_signoff(self, decision: SignoffDecision) -> None:
        reason = self._forged(SIGNOFF, decision) or signoffs.refusal(
            self._state.signoff,
            decision,
            self._incident.commander,
            self._steps.commander_may_approve,
        )
        if reason is not None:
            raise ApplicationError(reason, type="SignoffRefused", non_retryable=True)

    @workflow.update(name=UPDATE_CANARY_CONTROL)
    async def control_canary(self, control: CanaryControl) -> ControlReceipt:
        self._delivered_once(control)
        return await self._canary.control(control)

    @workflow.update(name=UPDATE_STAND_DOWN)
    async def stand_down_containment(self, order: StandDown) -> StandDownReceipt:
        self._delivered_once(order)
        return await self._containment.stand_down(order)

    @stand_down_containment.validator
    def _validate_stand_down(self, order: StandDown) -> None:
        reason = self._forged(STAND_DOWN, order) or self._containment.refusal(order)
        if reason is not None:
            raise ApplicationError(reason, type="StandDownRefused", non_retryable=True)

    @workflow.signal(name=SIGNAL_ALERTS_ATTACHED)
    def attach_alerts(self, batch: AlertsAttached) -> None:
        """Alerts the model's watch received while this incident is open (already on the
        trail, under this incident); kept here as counts, what still fires, the latest."""
        ledger = self._state.alerts
        firing = dict.fromkeys(ledger.firing)
        for item in batch.alerts:
            ledger.counts.add(item.kind)
            if item.alert.status == "firing":
                firing[item.alert.fingerprint] = None
            else:
                firing.pop(item.alert.fingerprint, None)
        ledger.firing = list(firing)
        ledger.recent = (ledger.recent + batch.alerts)[-RECENT_LIMIT:]

    @control_canary.validator
    def _validate_canary_control(self, control: CanaryControl) -> None:
        reason = self._forged(CANARY_CONTROL, control) or self._canary.refusal(control)
        if reason is not None:
            raise ApplicationError(reason, type="ControlRefused", non_retryable=True)

    def _forged(self, kind: DecisionKind, decision: SignableDecision) -> str | None:
        """Why a decision's signature is not the API's for this incident and step, now."""
        return decision_refusal(
            kind,
            decision,
            self._incident.decision_key,
            self._incident.incident_id,
            current_step(kind, self._state),
            workflow.now(),
            self._delivered,
        )

    def _delivered_once(self, decision: SignableDecision) -> None:
        if decision.proof is not None:
            self._delivered.add(decision.proof.signature)

    # ---- the interpreter -------------------------------------------------------------

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentState:
        await self._audit(
            "incident.opened",
            actor=incident.commander,
            detail={
                "model": incident.model.id,
                "severity": incident.severity.value,
                "summary": incident.summary,
                "playbook": f"{self._playbook.name}@{self._playbook.version}",
                **_trigger_detail(incident),
            },
        )
        await self._set_phase(Phase.RUNNING)
        budgets: Counter[str] = Counter()
        index = 0
        while index < len(self._playbook.steps):
            step = self._playbook.steps[index]
            try:
                await self._run_step(step)
            except StepFailed as failure:
                policy = step.on_failure
                reason = str(failure)
                if policy.action in (FailureAction.RETRY, FailureAction.GOTO):
                    if budgets[step.name] < policy.max_times:
                        budgets[step.name] += 1
                        if policy.action is FailureAction.GOTO:
                            assert policy.step is not None
                            index = self._playbook.index_of(policy.step)
                        continue
                    reason += f" ({policy.action.value} exhausted after {policy.max_times})"
                    return await self._finish(Phase.FAILED, reason)
                if policy.action is FailureAction.ROLLBACK:
                    await self._rollback(reason)
                    return await self._finish(Phase.ROLLED_BACK, reason)
                if policy.action is FailureAction.ESCALATE:
                    await self._notify(
                        self._playbook.escalation_channel,
                        f"Escalated: {step.name}",
                        reason,
                        event="escalated",
                    )
                    return await self._finish(Phase.ESCALATED, reason)
                return await self._finish(Phase.FAILED, reason)
            index += 1
        return await self._finish(Phase.RESOLVED, "all steps completed")

    async def _run_step(self, step: Step) -> None:
        record = StepRecord(
            name=step.name, kind=step.kind, status="running", started_at=workflow.now()
        )
        self._state.steps.append(record)
        self._state.current_step = step.name
        await self._audit("step.started", step=step.name, detail={"kind": step.kind})
        try:
            record.detail = (await run_step(self._steps, step)).detail
        except ActivityError as error:
            failure = StepFailed(failure_text(error))
            self._close_step(record, "failed", str(failure))
            await self._audit("step.failed", step=step.name, detail={"reason": str(failure)})
            raise failure from error
        except (StepFailed, CanaryFailed, ContainmentStoodDown) as failure:
            self._close_step(record, "failed", str(failure))
            await self._audit("step.failed", step=step.name, detail={"reason": str(failure)})
            raise StepFailed(str(failure)) from failure
        self._close_step(record, "succeeded", record.detail)
        await self._audit("step.succeeded", step=step.name, detail={"result": record.detail})

    def _close_step(self, record: StepRecord, status: Any, detail: str) -> None:
        record.status = status
        record.detail = detail
        record.finished_at = workflow.now()

    # ---- failure policies ----------------------------------------------------------------

    async def _rollback(self, reason: str) -> None:
        before = self._state.route_before
        if before is None:
            return
        await self._ports.ensure(
            "rollback", activity_options(ROLLBACK_RETRY), before.spec(), f"rollback: {reason}"
        )

    async def _finish(self, phase: Phase, outcome: str) -> IncidentState:
        self._state.outcome = outcome
        self._state.current_step = None
        await self._set_phase(phase)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._announce_closed(phase, outcome)
        await self._tell_watch(phase, outcome)
        return self._state

    async def _announce_closed(self, phase: Phase, outcome: str) -> None:
        """Tell the escalation channels the incident closed (PagerDuty resolves it).

        Only an incident that ended resolved or rolled back: one that escalated or failed
        still needs people, so its page stays open. Only playbooks that name
        ``escalate_to`` channels do this, so incidents recorded before channels existed
        replay unchanged. A channel that cannot be told does not keep the incident open:
        the failure is on the trail as the activity's."""
        if not self._playbook.escalate_to or phase not in (Phase.RESOLVED, Phase.ROLLED_BACK):
            return
        try:
            await self._notify(
                self._playbook.escalation_channel,
                f"Incident closed ({phase.value}): {self._incident.model.id}",
                f"Incident {self._incident.incident_id} closed as {phase.value}: {outcome}",
                event="incident_closed",
            )
        except ActivityError as error:
            workflow.logger.warning("the close could not be announced: %s", error)

    async def _tell_watch(self, phase: Phase, outcome: str) -> None:
        """Let the watch that opened this incident know it closed, so the model's next
        alert or breach opens a new one. A watch that was stopped has nobody to tell."""
        trigger = self._incident.trigger
        if trigger is None:
            return
        watch = workflow.get_external_workflow_handle(trigger.watch_workflow_id)
        closed = IncidentClosed(
            incident_id=self._incident.incident_id, phase=phase.value, outcome=outcome
        )
        try:
            await watch.signal(SIGNAL_INCIDENT_CLOSED, closed)
        except FailureError as error:
            workflow.logger.warning("the watch could not be told: %s", error)

    # ---- activities --------------------------------------------------------------------

    async def _notify(
        self,
        channel: str,
        subject: str,
        message: str,
        step: Step | None = None,
        *,
        to: list[ChannelRef] | None = None,
        event: NotificationEvent = "message",
    ) -> list[NotificationReceipt]:
        """Send a message: one activity per declared channel it goes to, in parallel, or
        one to the legacy webhook when it names none. Escalation-channel messages go to
        the playbook's ``escalate_to`` channels."""
        options = (
            step_options(step)
            if isinstance(step, NotifyStep)
            else notify_options(step.retry if step is not None else None)
        )
        if to is None and channel == self._playbook.escalation_channel:
            to = self._playbook.escalate_to
        name = step.name if step is not None else "escalation"
        if not to:
            return [
                await self._ports.notify(
                    channel, subject, message, self._activity_id(name), options, event=event
                )
            ]
        sends = [
            self._ports.notify(
                channel, subject, message, self._activity_id(name), options, ref, event
            )
            for ref in to
        ]
        return list(await asyncio.gather(*sends))

    async def _audit(
        self,
        kind: str,
        *,
        actor: str | None = None,
        step: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        await self._books.audit(kind, actor=actor, step=step, detail=detail)

    async def _set_phase(self, phase: Phase) -> None:
        previous = self._state.phase
        self._state.phase = phase
        workflow.upsert_search_attributes([SA_PHASE.value_set(phase.value)])
        await self._audit("phase.changed", detail={"from": previous.value, "to": phase.value})

    def _activity_id(self, step_name: str) -> str:
        return self._books.activity_id(step_name)


def _signed_by(decision: SignableDecision) -> dict[str, Any]:
    """What the trail keeps of a decision's signature: the key and when it was issued."""
    proof = decision.proof
    if proof is None:
        return {}
    return {"signed": {"key_id": proof.key_id, "issued_at": proof.issued_at.isoformat()}}


def _trigger_detail(incident: IncidentInput) -> dict[str, Any]:
    """What opened an incident its watch opened: the evidence, and the containment done."""
    trigger = incident.trigger
    if trigger is None:
        return {}
    return {
        "trigger": {
            "source": trigger.source.value,
            "watch": trigger.watch_workflow_id,
            "reason": trigger.reason,
            "route_before": trigger.route_before.serving.value if trigger.route_before else None,
            "route_after": trigger.route_after.serving.value if trigger.route_after else None,
            "route_generation": trigger.route_after.generation if trigger.route_after else None,
            "alerts": [a.alert.fingerprint for a in trigger.alerts],
            "evaluation": trigger.evaluation.headline if trigger.evaluation else None,
        }
    }

"""The `canary` step as the incident runs it: route changes, one child per ramp step, control.

The incident keeps the route in its own hands: it sets each step's percentage,
rolls back on a breach, an abort or an inconclusive end, and promotes at the end.
Each step's bake and analyses run in a :class:`~workflows.canary_step.CanaryStepWorkflow`
child, so the incident's history grows by a handful of events per step, whatever
the step's length. A commander's pause, resume, promote or abort is checked and
audited here (who and why), then forwarded to the running step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from contracts.canary import (
        CANARY_STEP_WORKFLOW,
        CONTROLLER_ROLE,
        DEPLOY_VERSION,
        RETIRE_SHADOW_WORKFLOW,
        SIGNAL_CANARY_CONTROL,
        CanaryControl,
        CanaryStatus,
        ControlAction,
        ControlReceipt,
        DeployVersionInput,
        RampStepInput,
        RampStepOutcome,
        RampStepSummary,
        RetireShadowInput,
    )
    from contracts.incident import IncidentInput, IncidentState
    from contracts.routing import RouteSpec, Serving
    from playbooks.base import KEEP_TRYING_EVERY
    from playbooks.canary import CanaryStep
    from workflows.bookkeeping import Bookkeeping
    from workflows.canary_messages import CanaryMessages
    from workflows.containment import Containment
    from workflows.options import step_options
    from workflows.ports import IncidentPorts

if TYPE_CHECKING:
    from workflows.steps.base import Notify


class CanaryFailed(Exception):
    """The ramp ended without promotion; the route is already back where the playbook says."""


class CanaryRamp:
    def __init__(
        self,
        incident: IncidentInput,
        state: IncidentState,
        books: Bookkeeping,
        ports: IncidentPorts,
        containment: Containment,
        notify: Notify,
    ) -> None:
        self._incident = incident
        self._state = state
        self._books = books
        self._ports = ports
        self._containment = containment
        self._messages = CanaryMessages(incident, notify)
        self._child: ChildWorkflowHandle[object, RampStepOutcome] | None = None
        self._step: CanaryStep | None = None

    # ---- the ramp ----------------------------------------------------------------------

    async def run(self, step: CanaryStep) -> str:
        self._step = step
        version, artifact, sha256 = self._candidate(step)
        options = step_options(step)
        await workflow.execute_activity(
            DEPLOY_VERSION,
            DeployVersionInput(
                target=self._incident.model.router.target,
                router_url=self._incident.model.router.url,
                model=self._incident.model.id,
                version=version,
                artifact=artifact,
                sha256=sha256,
            ),
            activity_id=self._books.activity_id(step.name),
            **options,
        )
        current = await self._ports.read_route(step.name, options)
        self._ports.record_route(current)
        stable = current.spec().model_copy(update={"candidate_version": None, "canary_percent": 0})
        status = CanaryStatus(
            step=step.name, candidate_version=version, stable=stable, ramp=step.ramp
        )
        self._state.canary = status
        for index, percent in enumerate(step.ramp):
            status.ramp_index, status.percent = index, percent
            await self._ports.ensure(
                step.name,
                options,
                _ramp_route(stable, version, percent),
                f"canary: {percent:g}% of live traffic to {version}",
            )
            outcome = await self._bake(step, index, percent)
            if outcome.result in ("passed", "promoted"):
                continue
            if outcome.result == "promoted_full":
                break
            await self._end_without_promotion(step, outcome)
        return await self._promote(step)

    def _candidate(self, step: CanaryStep) -> tuple[str, str, str | None]:
        """The version to ramp, its artifact and digest: the step's own, or the candidate."""
        if step.candidate_version is not None:
            try:
                named = self._incident.model.version(step.candidate_version)
            except KeyError:
                raise CanaryFailed(
                    f"version {step.candidate_version!r} is not in the manifest of "
                    f"{self._incident.model.id}"
                ) from None
            return named.version, named.artifact, named.sha256
        candidate = self._state.findings.candidate
        if candidate is None:
            raise CanaryFailed("no candidate to ramp: a remediate step must come first")
        return candidate.version, candidate.artifact, candidate.sha256

    async def _bake(self, step: CanaryStep, index: int, percent: float) -> RampStepOutcome:
        round_ = self._state.findings.remediation_rounds
        started_at = workflow.now()
        child_id = f"{self._incident.incident_id}/canary/{step.name}/r{round_}/{index + 1}"
        self._child = await workflow.start_child_workflow(
            CANARY_STEP_WORKFLOW,
            RampStepInput(
                incident_id=self._incident.incident_id,
                model=self._incident.model.id,
                target=self._incident.model.router.target,
                router_url=self._incident.model.router.url,
                candidate_version=self._canary_status().candidate_version,
                canary=step,
                ramp_index=index,
                percent=percent,
                started_at=started_at,
                decision_key=self._incident.decision_key,
            ),
            id=child_id,
            result_type=RampStepOutcome,
        )
        status = self._canary_status()
        status.step_workflow_id = child_id
        await self._books.audit(
            "canary.step_started",
            step=step.name,
            detail={"ramp_step": index + 1, "percent": percent, "workflow_id": child_id},
        )
        try:
            outcome: RampStepOutcome = await self._child
        finally:
            self._child = None
            status.step_workflow_id = None
            status.paused = False
        status.completed.append(
            RampStepSummary(
                ramp_index=index,
                percent=percent,
                result=outcome.result,
                detail=outcome.detail,
                looks=outcome.progress.looks,
                started_at=started_at,
                finished_at=workflow.now(),
            )
        )
        await self._books.audit(
            "canary.step_finished",
            actor=outcome.by,
            step=step.name,
            detail={
                "ramp_step": index + 1,
                "percent": percent,
                "result": outcome.result,
                "detail": outcome.detail,
                "looks": outcome.progress.looks,
                "breaches": outcome.progress.breaches,
                "inconclusive": outcome.progress.inconclusive,
                "extensions": outcome.progress.extensions,
            },
        )
        return outcome

    async def _end_without_promotion(self, step: CanaryStep, outcome: RampStepOutcome) -> None:
        status = self._canary_status()
        status.state = {"breached": "rolled_back", "aborted": "aborted"}.get(
            outcome.result, "inconclusive"
        )  # type: ignore[assignment]
        if outcome.result == "breached":
            status.breach = outcome.progress.latest
        target = step.rollback_to if outcome.result != "inconclusive" else "stable"
        spec = _fallback_route(status.stable) if target == "fallback" else status.stable
        why = f"canary {outcome.result} at {status.percent:g}%: {outcome.detail}"
        # Taking the candidate off live traffic stops harm: a promise, like containment.
        change = await self._containment.ensure(
            step.name, step_options(step), spec, why, KEEP_TRYING_EVERY
        )
        route = change.after
        evidence = outcome.progress.latest
        await self._books.audit(
            f"canary.{status.state}",
            actor=outcome.by,
            step=step.name,
            detail={
                "reason": outcome.detail,
                "percent": status.percent,
                "route": route.model_dump(mode="json"),
                "analysis": evidence.model_dump(mode="json") if evidence else None,
            },
        )
        await self._messages.rolled_back(step, status, why, route)
        raise CanaryFailed(why)

    async def _promote(self, step: CanaryStep) -> str:
        status = self._canary_status()
        stable = status.stable
        retired = stable.primary_version
        promoted = RouteSpec(
            serving=Serving.PRIMARY,
            primary_version=status.candidate_version,
            shadow_versions=sorted({*stable.shadow_versions, retired} - {status.candidate_version}),
        )
        route = (
            await self._ports.ensure(
                step.name,
                step_options(step),
                promoted,
                f"canary passed: {status.candidate_version} promoted, {retired} in shadow",
            )
        ).after
        now = workflow.now()
        status.state = "promoted"
        status.percent = 100.0
        status.promoted_at = now
        status.shadow_until = now + step.shadow_period
        await workflow.start_child_workflow(
            RETIRE_SHADOW_WORKFLOW,
            RetireShadowInput(
                incident_id=self._incident.incident_id,
                model=self._incident.model.id,
                target=self._incident.model.router.target,
                router_url=self._incident.model.router.url,
                version=retired,
                primary_version=status.candidate_version,
                after=step.shadow_period,
            ),
            id=f"{self._incident.incident_id}/retire-shadow/{retired}",
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        await self._books.audit(
            "canary.promoted",
            step=step.name,
            detail={
                "primary_version": status.candidate_version,
                "shadow": retired,
                "shadow_until": status.shadow_until.isoformat(),
                "route_generation": route.generation,
                "steps": [s.model_dump(mode="json") for s in status.completed],
            },
        )
        await self._messages.promoted(step, status)
        return (
            f"{status.candidate_version} promoted to primary after "
            f"{len(status.completed)} ramp step(s); {retired} in shadow until "
            f"{status.shadow_until:%Y-%m-%d %H:%M} UTC"
        )

    # ---- manual control ----------------------------------------------------------------

    def refusal(self, control: CanaryControl) -> str | None:
        """Why this control cannot be applied now (None when it can)."""
        action = control.action.value.replace("_", " ")
        if CONTROLLER_ROLE not in control.principal_roles:
            return f"{control.principal} is not an incident commander and cannot {action} a canary"
        status = self._state.canary
        if status is None or self._child is None:
            return "no canary step is running on this incident"
        if control.action is ControlAction.PAUSE and status.paused:
            return "the canary is already paused"
        if control.action is ControlAction.RESUME and not status.paused:
            return "the canary is not paused"
        return None

    async def control(self, control: CanaryControl) -> ControlReceipt:
        status = self._canary_status()
        child = self._child
        assert child is not None  # the validator guarantees a running step
        await self._books.audit(
            f"canary.{control.action.value}",
            actor=control.principal,
            step=status.step,
            detail={
                "reason": control.reason,
                "ramp_step": status.ramp_index + 1,
                "percent": status.percent,
            },
        )
        if control.action in (ControlAction.PAUSE, ControlAction.RESUME):
            status.paused = control.action is ControlAction.PAUSE
        await child.signal(SIGNAL_CANARY_CONTROL, control)
        if self._step is not None:
            await self._messages.controlled(self._step, status, control)
        return ControlReceipt(
            accepted=True,
            action=control.action,
            ramp_step=status.ramp_index + 1,
            percent=status.percent,
        )

    def _canary_status(self) -> CanaryStatus:
        status = self._state.canary
        assert status is not None
        return status


def _ramp_route(stable: RouteSpec, candidate: str, percent: float) -> RouteSpec:
    """``percent`` of applicants (sticky by id) to the candidate, the rest as before."""
    return stable.model_copy(
        update={
            "candidate_version": candidate,
            "canary_percent": percent,
            "shadow_versions": [v for v in stable.shadow_versions if v != candidate],
        }
    )


def _fallback_route(stable: RouteSpec) -> RouteSpec:
    """Everything to the rules-based fallback, the primary kept scoring in shadow."""
    return RouteSpec(
        serving=Serving.FALLBACK,
        primary_version=stable.primary_version,
        shadow_versions=sorted({*stable.shadow_versions, stable.primary_version}),
    )

"""One step of a canary ramp: bake at a fixed percentage, analysing every interval.

A child of the incident workflow, so the incident's own history holds one start and
one result per step however long the step bakes; this workflow continues as new
when its own history passes the playbook's ``history_limit``, carrying its progress.

The bake clock only runs while the step is not paused. Analyses run every interval
whatever the clock does: a paused step still rolls back on a breach. At the end of
the bake the latest analysis decides: a pass ends the step; evidence that is still
short (too few samples per group, or an estimate on the wrong side of a threshold
whose interval does not settle it) extends the bake, at most ``inconclusive_limit``
times, after which the step ends inconclusive, which never promotes.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.canary import (
        CANARY_ANALYSIS,
        CANARY_STEP_WORKFLOW,
        QUERY_CANARY_PROGRESS,
        SIGNAL_CANARY_CONTROL,
        AnalysisRequest,
        CanaryAnalysis,
        CanaryControl,
        ControlAction,
        RampStepInput,
        RampStepOutcome,
        RampStepProgress,
    )
    from contracts.decisions import CANARY_CONTROL, decision_refusal
    from fairness.live import MetricVerdict
    from fairness.sequential import look_alpha
    from workflows.bookkeeping import Bookkeeping
    from workflows.options import step_options


@workflow.defn(name=CANARY_STEP_WORKFLOW)
class CanaryStepWorkflow:
    @workflow.init
    def __init__(self, run: RampStepInput) -> None:
        self._run = run
        self._canary = run.canary
        self._progress = run.progress or RampStepProgress(
            ramp_index=run.ramp_index,
            percent=run.percent,
            started_at=run.started_at,
            bake_target=run.canary.bake,
            clock_running_since=run.started_at,
        )
        self._controls: list[CanaryControl] = []
        self._delivered: set[str] = set()
        self._books = Bookkeeping(run.incident_id)
        self._step_name = f"{run.canary.name}-{run.percent:g}pct"

    @workflow.signal(name=SIGNAL_CANARY_CONTROL)
    def control(self, control: CanaryControl) -> None:
        """Queued and applied by the run loop; the incident already checked and audited it.

        Anyone who can reach Temporal can signal this workflow directly, around the
        incident and its trail: when the incident pinned a decision key, a control must
        carry the API's signature for this incident and canary step, or it is dropped.
        (Steps started before decision keys existed have none and keep taking controls
        as they did, so their histories replay.)
        """
        key = self._run.decision_key
        if key is not None:
            reason = decision_refusal(
                CANARY_CONTROL,
                control,
                key,
                self._run.incident_id,
                self._canary.name,
                workflow.now(),
                self._delivered,
            )
            if reason is not None:
                workflow.logger.warning("canary control dropped: %s", reason)
                return
            assert control.proof is not None
            self._delivered.add(control.proof.signature)
        self._controls.append(control)

    @workflow.query(name=QUERY_CANARY_PROGRESS)
    def progress(self) -> RampStepProgress:
        return self._progress.model_copy(update={"time_left": self._time_left(workflow.now())})

    @workflow.run
    async def run(self, run: RampStepInput) -> RampStepOutcome:
        progress = self._progress
        while True:
            outcome = self._apply_controls()
            if outcome is not None:
                return outcome
            now = workflow.now()
            if self._time_left(now) <= timedelta(0):
                if progress.last_look_at != now:
                    outcome = await self._look()
                    if outcome is not None:
                        return outcome
                outcome = await self._end_of_bake()
                if outcome is not None:
                    return outcome
                continue
            next_look = (
                progress.last_look_at or progress.started_at
            ) + self._canary.analysis_interval
            wake = next_look
            if progress.clock_running_since is not None:
                wake = min(wake, now + self._time_left(now))
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: bool(self._controls), timeout=max(wake - now, timedelta(0))
                )
            if self._controls:
                continue
            if workflow.now() >= next_look:
                outcome = await self._look()
                if outcome is not None:
                    return outcome
            if workflow.info().get_current_history_length() > self._canary.history_limit:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._controls:
                    progress.runs += 1
                    workflow.continue_as_new(self._run.model_copy(update={"progress": progress}))

    # ---- the bake clock -------------------------------------------------------------

    def _time_left(self, now: datetime) -> timedelta:
        progress = self._progress
        baked = progress.baked
        if progress.clock_running_since is not None:
            baked += now - progress.clock_running_since
        return progress.bake_target - baked

    def _apply_controls(self) -> RampStepOutcome | None:
        progress = self._progress
        while self._controls:
            control = self._controls.pop(0)
            now = workflow.now()
            if control.action is ControlAction.PAUSE and progress.clock_running_since:
                progress.baked += now - progress.clock_running_since
                progress.clock_running_since = None
                progress.paused_by = control.principal
            elif control.action is ControlAction.RESUME and progress.clock_running_since is None:
                progress.clock_running_since = now
                progress.paused_by = None
            elif control.action is ControlAction.PROMOTE:
                return self._outcome("promoted", f"promoted: {control.reason}", control.principal)
            elif control.action is ControlAction.PROMOTE_FULL:
                return self._outcome(
                    "promoted_full", f"promoted to 100%: {control.reason}", control.principal
                )
            elif control.action is ControlAction.ABORT:
                return self._outcome("aborted", f"aborted: {control.reason}", control.principal)
        return None

    async def _end_of_bake(self) -> RampStepOutcome | None:
        progress = self._progress
        latest = progress.latest
        if latest is not None and latest.verdict is MetricVerdict.PASS:
            return self._outcome("passed", latest.analysis.headline)
        short = _shortfall(progress.samples_needed)
        if progress.extensions >= self._canary.inconclusive_limit:
            headline = latest.analysis.headline if latest else "no analysis could run"
            return self._outcome(
                "inconclusive",
                f"still inconclusive after {progress.extensions} extension(s): {headline}{short}",
            )
        progress.extensions += 1
        progress.bake_target += self._canary.extend_by
        await self._books.audit(
            "canary.bake_extended",
            step=self._step_name,
            detail={
                "extension": progress.extensions,
                "of": self._canary.inconclusive_limit,
                "extend_by_s": self._canary.extend_by.total_seconds(),
                "samples_needed": progress.samples_needed,
                "latest": latest.analysis.headline if latest else None,
            },
        )
        return None

    # ---- analysis ----------------------------------------------------------------------

    async def _look(self) -> RampStepOutcome | None:
        progress = self._progress
        now = workflow.now()
        look = progress.looks + 1
        canary = self._canary
        request = AnalysisRequest(
            incident_id=self._run.incident_id,
            model=self._run.model,
            target=self._run.target,
            router_url=self._run.router_url,
            provider=canary.metrics_provider,
            candidate_version=self._run.candidate_version,
            since=progress.started_at,
            until=now,
            look=look,
            alpha=look_alpha(canary.alpha, len(canary.ramp), canary.planned_looks(), look),
            thresholds=canary.metrics,
        )
        result: CanaryAnalysis = await workflow.execute_activity(
            CANARY_ANALYSIS,
            request,
            result_type=CanaryAnalysis,
            activity_id=self._books.activity_id(self._step_name),
            **step_options(canary),
        )
        progress.looks = look
        progress.last_look_at = now
        progress.latest = result
        progress.samples_needed = result.analysis.samples_needed
        verdict = result.verdict
        if verdict is MetricVerdict.PASS:
            progress.passes += 1
        elif verdict is MetricVerdict.BREACH:
            progress.breaches += 1
        else:
            progress.inconclusive += 1
        await self._books.audit(
            "canary.analysis",
            step=self._step_name,
            detail=result.model_dump(mode="json"),
        )
        if verdict is MetricVerdict.BREACH and progress.breaches > canary.failure_limit:
            return self._outcome("breached", result.analysis.headline)
        return None

    def _outcome(self, result: str, detail: str, by: str | None = None) -> RampStepOutcome:
        progress = self._progress
        if progress.clock_running_since is not None:
            now = workflow.now()
            progress.baked += now - progress.clock_running_since
            progress.clock_running_since = now
        return RampStepOutcome.model_validate(
            {"result": result, "detail": detail, "by": by, "progress": progress}
        )


def _shortfall(needed: dict[str, int]) -> str:
    short = {group: n for group, n in needed.items() if n > 0}
    if not short:
        return ""
    return "; more samples needed: " + ", ".join(f"{g} {n}" for g, n in sorted(short.items()))

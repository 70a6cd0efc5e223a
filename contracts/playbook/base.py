"""The building blocks every playbook step shares: retry policy, timeouts, on-failure policy."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.durations import Duration


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a playbook must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


KEEP_TRYING_EVERY = timedelta(seconds=15)
"""Containment's longest wait between attempts once its retry budget is spent."""


class RetrySpec(Strict):
    """Temporal retry policy for the step's activities."""

    initial_interval: Duration = timedelta(seconds=1)
    backoff: float = Field(default=2.0, ge=1.0)
    maximum_interval: Duration = timedelta(minutes=1)
    maximum_attempts: int = Field(default=5, ge=1, le=1000)
    non_retryable: list[str] = Field(default_factory=list)


class TimeoutSpec(Strict):
    start_to_close: Duration = timedelta(seconds=30)
    schedule_to_close: Duration | None = timedelta(minutes=10)
    heartbeat: Duration | None = Field(
        default=None, description="long computations report progress at least this often"
    )


def long_computation() -> TimeoutSpec:
    """Defaults for audit and training steps: minutes of work, heartbeating all along."""
    return TimeoutSpec(
        start_to_close=timedelta(minutes=30),
        schedule_to_close=timedelta(hours=2),
        heartbeat=timedelta(minutes=1),
    )


class FailureAction(StrEnum):
    RETRY = "retry"  # run the step again, at most max_times
    GOTO = "goto"  # go back to an earlier step, at most max_times
    ROLLBACK = "rollback"  # restore the route as it was before the incident, then stop
    ESCALATE = "escalate"  # notify the escalation channel, then stop as escalated
    FAIL = "fail"  # stop as failed


class OnFailure(Strict):
    action: FailureAction = FailureAction.FAIL
    step: str | None = Field(default=None, description="target of goto")
    max_times: int = Field(default=1, ge=1, le=100)

    @model_validator(mode="after")
    def _goto_has_target(self) -> OnFailure:
        if self.action is FailureAction.GOTO and not self.step:
            raise ValueError("goto needs `step`: the name of an earlier step to go back to")
        if self.action is not FailureAction.GOTO and self.step:
            raise ValueError(f"`step` only applies to goto, not to {self.action.value}")
        return self


class StepBase(Strict):
    name: str
    retry: RetrySpec = Field(default_factory=RetrySpec)
    timeouts: TimeoutSpec = Field(default_factory=TimeoutSpec)
    on_failure: OnFailure = Field(default_factory=OnFailure)

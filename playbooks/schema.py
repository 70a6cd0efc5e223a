"""The playbook schema: a runbook as typed steps, validated when it is loaded.

A playbook is data. One generic incident workflow interprets it, and the validated
playbook travels into the workflow as input, so a running incident stays pinned to
the version it started with whatever happens to the file afterwards.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.routing import Serving
from playbooks.durations import Duration

_STEP_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_PLACEHOLDER = re.compile(r"{(\w+)}")
DEFAULT_SIGNOFF_ROLES = ("legal", "compliance", "executive", "communications")
MESSAGE_FIELDS = ("incident_id", "model", "severity", "summary", "playbook")


class _Strict(BaseModel):
    """Unknown keys are errors: a typo in a playbook must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class RetrySpec(_Strict):
    """Temporal retry policy for the step's activities."""

    initial_interval: Duration = timedelta(seconds=1)
    backoff: float = Field(default=2.0, ge=1.0)
    maximum_interval: Duration = timedelta(minutes=1)
    maximum_attempts: int = Field(default=5, ge=1, le=1000)
    non_retryable: list[str] = Field(default_factory=list)


class TimeoutSpec(_Strict):
    start_to_close: Duration = timedelta(seconds=30)
    schedule_to_close: Duration | None = timedelta(minutes=10)


class FailureAction(StrEnum):
    RETRY = "retry"  # run the step again, at most max_times
    GOTO = "goto"  # go back to an earlier step, at most max_times
    ROLLBACK = "rollback"  # restore the route as it was before the incident, then stop
    ESCALATE = "escalate"  # notify the escalation channel, then stop as escalated
    FAIL = "fail"  # stop as failed


class OnFailure(_Strict):
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


class _Step(_Strict):
    name: str
    retry: RetrySpec = Field(default_factory=RetrySpec)
    timeouts: TimeoutSpec = Field(default_factory=TimeoutSpec)
    on_failure: OnFailure = Field(default_factory=OnFailure)


class RouteStep(_Step):
    """Set the model's route at its router (e.g. contain: fallback, primary in shadow)."""

    kind: Literal["route"]
    serving: Serving
    shadow_primary: bool = Field(
        default=True, description="keep the primary version scoring in shadow"
    )
    canary_percent: float = Field(default=0.0, ge=0.0, le=100.0)


class NotifyStep(_Step):
    """Tell people: a webhook when one is configured, a log sink otherwise."""

    kind: Literal["notify"]
    channel: str = "incident"
    message: str = Field(min_length=1, description="may use the MESSAGE_FIELDS placeholders")

    @model_validator(mode="after")
    def _known_placeholders(self) -> NotifyStep:
        unknown = set(_PLACEHOLDER.findall(self.message)) - set(MESSAGE_FIELDS)
        if unknown:
            raise ValueError(
                f"message uses unknown placeholders {sorted(unknown)}; "
                f"known: {list(MESSAGE_FIELDS)}"
            )
        return self


class SignoffRole(_Strict):
    role: str = Field(min_length=1)
    quorum: int = Field(default=1, ge=1, le=50)


class SignoffStep(_Step):
    """Wait for stakeholders to approve or reject; a rejection is a step failure."""

    kind: Literal["signoff"]
    subject: str = Field(min_length=1, description="what the approvers are asked to confirm")
    roles: list[SignoffRole] = Field(
        default_factory=lambda: [SignoffRole(role=r) for r in DEFAULT_SIGNOFF_ROLES],
        min_length=1,
    )
    deadline: Duration = timedelta(hours=72)
    reminder_every: Duration | None = timedelta(hours=12)
    on_expiry: Literal["reject", "escalate"] = Field(
        default="reject",
        description="reject: expiry counts as a rejection; escalate: notify and keep waiting",
    )
    commander_may_approve: bool = False

    @model_validator(mode="after")
    def _roles_unique(self) -> SignoffStep:
        names = [r.role for r in self.roles]
        if len(set(names)) != len(names):
            raise ValueError(f"roles are listed more than once: {names}")
        if self.reminder_every is not None and self.reminder_every >= self.deadline:
            raise ValueError("reminder_every must be shorter than the deadline")
        return self


Step = Annotated[RouteStep | NotifyStep | SignoffStep, Field(discriminator="kind")]
STEP_KINDS = ("route", "notify", "signoff")


class Playbook(_Strict):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""
    escalation_channel: str = "escalation"
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _steps_consistent(self) -> Playbook:
        seen: dict[str, int] = {}
        for index, step in enumerate(self.steps):
            if not _STEP_NAME.match(step.name):
                raise ValueError(
                    f"steps[{index}].name {step.name!r}: use lower case letters, digits, - and _"
                )
            if step.name in seen:
                raise ValueError(
                    f"steps[{index}].name {step.name!r} is already used by steps[{seen[step.name]}]"
                )
            seen[step.name] = index
            target = step.on_failure.step
            if target is not None and seen.get(target, index) >= index:
                raise ValueError(
                    f"steps[{index}].on_failure.step {target!r} must name an earlier step"
                )
        return self

    def index_of(self, name: str) -> int:
        for index, step in enumerate(self.steps):
            if step.name == name:
                return index
        raise KeyError(name)

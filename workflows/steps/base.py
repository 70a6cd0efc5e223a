"""What every step kind receives (the incident's context) and answers (its outcome).

Workflow code: deterministic, no I/O. The context holds the incident workflow's own
objects by reference, so a step changes the incident's state where queries see it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.channels import ChannelRef, NotificationEvent
    from contracts.incident import IncidentInput, IncidentState, Phase
    from contracts.steps import NotificationReceipt
    from playbooks.schema import Playbook
    from playbooks.steps import Step
    from workflows.bookkeeping import Bookkeeping
    from workflows.canary import CanaryRamp
    from workflows.containment import Containment
    from workflows.ports import IncidentPorts


class StepFailed(Exception):
    """A step did not achieve its purpose; the playbook's on_failure decides what follows."""


@dataclass(frozen=True)
class StepOutcome:
    """A step that succeeded: ``detail`` is what the step record and the trail keep."""

    detail: str


class Notify(Protocol):
    """The incident's way to send a message (the step's retry policy, if one is given):
    to the declared channels ``to`` names, one receipt each, or to the legacy webhook."""

    def __call__(
        self,
        channel: str,
        subject: str,
        message: str,
        step: Step | None = None,
        *,
        to: list[ChannelRef] | None = None,
        event: NotificationEvent = "message",
    ) -> Awaitable[list[NotificationReceipt]]: ...


class Audit(Protocol):
    """The incident's way to write to the trail from workflow code."""

    def __call__(
        self,
        kind: str,
        *,
        actor: str | None = None,
        step: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Awaitable[None]: ...


@dataclass
class StepContext:
    """The running incident as its steps see it."""

    incident: IncidentInput
    state: IncidentState
    books: Bookkeeping
    ports: IncidentPorts
    containment: Containment
    canary: CanaryRamp
    notify: Notify
    audit: Audit
    set_phase: Callable[[Phase], Awaitable[None]]
    commander_may_approve: bool = False
    """Set by the open sign-off step: whether the commander may vote in it (the
    workflow's sign-off validator reads it)."""

    @property
    def playbook(self) -> Playbook:
        return self.incident.playbook

    def activity_id(self, step_name: str) -> str:
        return self.books.activity_id(step_name)


StepT_contra = TypeVar("StepT_contra", contravariant=True)


class StepKind(Protocol[StepT_contra]):
    """The one interface of a step kind: each module's ``run`` has this shape."""

    def __call__(self, ctx: StepContext, step: StepT_contra) -> Awaitable[StepOutcome]: ...

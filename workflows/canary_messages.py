"""What the canary tells people: its rollback, its promotion, a pause and a resume.

A canary step names its channels in ``to:`` (declared by the operator, like a notify
step's). A rollback takes the candidate off live traffic because it harmed or could not
be shown not to: that is an escalation, so with no ``to:`` it goes where the playbook's
escalations go (``escalate_to``: PagerDuty is triggered), and to the legacy webhook only
when the playbook names no channel at all. The promotion, a pause and a resume are news,
not pages: they go to the step's channels other than PagerDuty, and nowhere when it
names none (as before channels existed).

Incidents that started before this module sent their rollback message to the legacy
webhook under the channel name ``incident``, and nothing else; they keep doing so on
replay (:data:`CANARY_MESSAGES_PATCH`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.canary import CanaryControl, CanaryStatus
    from contracts.channels import NOT_PAGES, ChannelRef, NotificationEvent
    from contracts.incident import IncidentInput
    from contracts.routing import Route
    from playbooks.canary import CanaryStep

if TYPE_CHECKING:
    from workflows.steps.base import Notify

CANARY_MESSAGES_PATCH = "canary-messages-through-channels"
"""Patch id: before it, a rollback was announced to the legacy webhook only."""
LEGACY_CHANNEL = "incident"


class CanaryMessages:
    def __init__(self, incident: IncidentInput, notify: Notify) -> None:
        self._incident = incident
        self._notify = notify

    async def rolled_back(
        self, step: CanaryStep, status: CanaryStatus, why: str, route: Route
    ) -> None:
        subject = f"Canary {status.state}: {self._incident.model.id}"
        text = (
            f"Incident {self._incident.incident_id}: {why}. The router now serves "
            f"{route.serving.value} (generation {route.generation})."
        )
        if not workflow.patched(CANARY_MESSAGES_PATCH):
            await self._notify(LEGACY_CHANNEL, subject, text, step)
            return
        # No `to:`: the escalation channel, which the incident sends to `escalate_to`.
        channel = LEGACY_CHANNEL if step.to else self._incident.playbook.escalation_channel
        await self._send(step, channel, subject, text, step.to or None, "canary_rolled_back")

    async def promoted(self, step: CanaryStep, status: CanaryStatus) -> None:
        subject = f"Canary promoted: {self._incident.model.id}"
        text = (
            f"Incident {self._incident.incident_id}: {status.candidate_version} passed every "
            f"ramp step ({len(status.completed)}) and now serves as primary; "
            f"{status.stable.primary_version} keeps scoring in shadow."
        )
        await self._news(step, subject, text, "canary_promoted")

    async def controlled(
        self, step: CanaryStep, status: CanaryStatus, control: CanaryControl
    ) -> None:
        """A pause or a resume, with who and why (other controls end in a rollback or a
        promotion, which have their own messages)."""
        action = control.action.value
        verb = {"pause": "paused", "resume": "resumed"}.get(action)
        if verb is None:
            return
        subject = f"Canary {verb}: {self._incident.model.id}"
        text = (
            f"Incident {self._incident.incident_id}: {control.principal} {verb} the canary "
            f"of {status.candidate_version} at {status.percent:g}% (ramp step "
            f"{status.ramp_index + 1} of {len(status.ramp)}): {control.reason}"
        )
        event: NotificationEvent = "canary_paused" if verb == "paused" else "canary_resumed"
        await self._news(step, subject, text, event)

    async def _news(
        self, step: CanaryStep, subject: str, text: str, event: NotificationEvent
    ) -> None:
        assert event in NOT_PAGES
        to = [ref for ref in step.to if ref.kind != "pagerduty"]
        if not to or not workflow.patched(CANARY_MESSAGES_PATCH):
            return
        await self._send(step, LEGACY_CHANNEL, subject, text, to, event)

    async def _send(
        self,
        step: CanaryStep,
        channel: str,
        subject: str,
        text: str,
        to: list[ChannelRef] | None,
        event: NotificationEvent,
    ) -> None:
        """Send; a channel that cannot be told does not change what the canary did (the
        failure is on the trail as the activity's, and in the worker's log)."""
        try:
            await self._notify(channel, subject, text, step, to=to, event=event)
        except ActivityError as error:
            workflow.logger.warning("the canary's %s could not be announced: %s", event, error)

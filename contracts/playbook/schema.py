"""The playbook: a runbook as typed steps, validated when it is loaded.

A playbook is data. One generic incident workflow interprets it, and the validated
playbook travels into the workflow as input, so a running incident stays pinned to
the version it started with whatever happens to the file afterwards.
"""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from contracts.channels import ChannelRef
from contracts.playbook.base import FailureAction, StepBase, Strict
from contracts.playbook.canary import CanaryStep
from contracts.playbook.steps import NotifyStep, RouteStep, SignoffStep, Step

_STEP_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class Playbook(Strict):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""
    escalation_channel: str = "escalation"
    escalate_to: list[ChannelRef] = Field(
        default_factory=list,
        max_length=20,
        description="declared channels told of escalations (containment failing, a step "
        "escalating, an overdue sign-off), of containment confirmed and of the incident "
        "closing: e.g. PagerDuty triggers, acknowledges, then resolves",
    )
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _steps_consistent(self) -> Playbook:
        """Names are unique (nested ones too: they label the audit trail); goto goes back."""
        seen: dict[str, str] = {}
        top_level: dict[str, int] = {}
        for index, step in enumerate(self.steps):
            for path, named in _named_steps(step, f"steps[{index}]"):
                if not _STEP_NAME.match(named.name):
                    raise ValueError(
                        f"{path}.name {named.name!r}: use lower case letters, digits, - and _"
                    )
                if named.name in seen:
                    raise ValueError(
                        f"{path}.name {named.name!r} is already used by {seen[named.name]}"
                    )
                seen[named.name] = path
            top_level[step.name] = index
            target = step.on_failure.step
            if target is not None and top_level.get(target, index) >= index:
                raise ValueError(
                    f"steps[{index}].on_failure.step {target!r} must name an earlier step"
                )
        return self

    @model_validator(mode="after")
    def _containment_stays_down_when_stood_down(self) -> Playbook:
        """Containment fails only when a commander stands it down: going round again
        (retry, goto) would contain the model against that explicit order."""
        for index, step in enumerate(self.steps):
            looping = (FailureAction.RETRY, FailureAction.GOTO)
            if isinstance(step, RouteStep) and step.contains and step.on_failure.action in looping:
                raise ValueError(
                    f"steps[{index}].on_failure.action {step.on_failure.action.value!r}: a "
                    "containment step fails only when an incident commander stands it down, "
                    "and must not run again against that order; use escalate, rollback or fail"
                )
        return self

    def warnings(self) -> list[str]:
        """What is valid but could end an incident with its model uncontained."""
        first = next(
            (i for i, s in enumerate(self.steps) if isinstance(s, RouteStep) and s.contains),
            None,
        )
        if first is None:
            return [
                "no step contains the model (a route step to the fallback): an incident on "
                "this playbook never takes the model off live traffic"
            ]
        before = [f"steps[{i}] ({s.name})" for i, s in enumerate(self.steps[:first])]
        if not before:
            return []
        return [
            f"{', '.join(before)} run(s) before the containment step steps[{first}]: a "
            "failure there can end the incident before the model is contained"
        ]

    def channel_refs(self) -> list[tuple[str, ChannelRef]]:
        """Every channel the playbook names, with its YAML path, so a worker or an API can
        say which one is not declared where it is named."""
        refs = [(f"escalate_to[{i}]", ref) for i, ref in enumerate(self.escalate_to)]
        for index, step in enumerate(self.steps):
            path = f"steps[{index}]"
            if isinstance(step, NotifyStep | CanaryStep):
                refs += [(f"{path}.to[{i}]", ref) for i, ref in enumerate(step.to)]
            if isinstance(step, SignoffStep):
                for r, role in enumerate(step.roles):
                    refs += [
                        (f"{path}.roles[{r}].notify[{i}]", ref) for i, ref in enumerate(role.notify)
                    ]
        return refs

    def index_of(self, name: str) -> int:
        for index, step in enumerate(self.steps):
            if step.name == name:
                return index
        raise KeyError(name)


def _named_steps(step: Step, path: str) -> list[tuple[str, StepBase]]:
    """A step and, for a parallel step, the steps inside it, with their YAML paths."""
    nested = [(f"{path}.steps[{i}]", sub) for i, sub in enumerate(getattr(step, "steps", []))]
    return [(path, step), *nested]

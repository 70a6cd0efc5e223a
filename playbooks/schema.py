"""The playbook: a runbook as typed steps, validated when it is loaded.

A playbook is data. One generic incident workflow interprets it, and the validated
playbook travels into the workflow as input, so a running incident stays pinned to
the version it started with whatever happens to the file afterwards.
"""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from playbooks.base import Strict
from playbooks.steps import Step

_STEP_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class Playbook(Strict):
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

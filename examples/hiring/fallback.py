"""The hiring service's declarative fallback rules (fallback.yaml), read and evaluated.

Fairlane has no schema of its own for fallback rules yet (``contracts.fallback_rules``
does not exist on main), so the team's service owns this small one: ordered rules of
conditions on features, the first match decides. Unknown keys are refused with the
YAML path, so a typo cannot silently change who gets hired.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """One feature's condition: a numeric range, or a set of categories."""

    at_least: float | None = None
    below: float | None = None
    in_: list[str] | None = Field(default=None, alias="in")

    @model_validator(mode="after")
    def _says_something(self) -> Condition:
        if self.at_least is None and self.below is None and self.in_ is None:
            raise ValueError("a condition needs at_least, below or in")
        return self

    def holds(self, value: Any) -> bool:
        if self.in_ is not None and str(value) not in self.in_:
            return False
        if self.at_least is not None and not float(value) >= self.at_least:
            return False
        return self.below is None or float(value) < self.below


class Rule(_Strict):
    name: str = Field(min_length=1)
    when: dict[str, Condition] = Field(min_length=1)
    hired: bool


class Otherwise(_Strict):
    hired: bool


class FallbackRules(_Strict):
    version: str = Field(min_length=1)
    rules: list[Rule]
    otherwise: Otherwise

    def features(self) -> set[str]:
        return {name for rule in self.rules for name in rule.when}

    def decide(self, applicant: Mapping[str, Any]) -> tuple[bool, str]:
        """(hired, the rule that decided) for one applicant's features."""
        for rule in self.rules:
            if all(cond.holds(applicant[name]) for name, cond in rule.when.items()):
                return rule.hired, rule.name
        return self.otherwise.hired, "otherwise"


class RulesError(ValueError):
    """The rules file is not valid; the message names the YAML path."""


def load_rules(path: Path) -> FallbackRules:
    try:
        return FallbackRules.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RulesError(f"{path}: {where}: {first['msg']}") from None

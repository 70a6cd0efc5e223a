"""Declarative fallback rules: what a gateway answers with while a model is contained.

A team writes its fallback as data, not code, so an auditor can read exactly what
answered during an incident and the gateway never runs a caller's program::

    version: claims-rules-v3
    rules:                      # ordered; the first rule whose conditions all hold wins
      - when: {claim_amount: {gt: 20000}}
        decision: false
        amount: 0
      - when: {tenure_years: {ge: 2}, region: {in: [north, south]}}
        decision: true
        amount: 1500
    otherwise: {decision: false, amount: 0}   # required: every request gets an answer

A condition names a declared feature and one or more comparisons (``lt le gt ge eq ne
in``), all AND-ed; ordering comparisons only on numeric features. Every error names its
YAML path (``rules[2].when.tenure.lt: ...``), so the author can find it in the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Scalar = float | bool | str
FeatureType = Literal["numeric", "categorical"]

_ORDERING = ("lt", "le", "gt", "ge")


class RulesError(ValueError):
    """Fallback rules that will not be served; ``problems`` are ``path: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("fallback rules are invalid: " + "; ".join(problems))


class Comparison(BaseModel):
    """The comparisons one condition makes on one feature, all of which must hold."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None
    eq: Scalar | None = None
    ne: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1)

    @model_validator(mode="after")
    def _at_least_one(self) -> Comparison:
        if not self.operators():
            raise ValueError("name at least one of lt, le, gt, ge, eq, ne, in")
        return self

    def operators(self) -> dict[str, Any]:
        """The comparisons given, by their YAML names."""
        return {
            ("in" if name == "in_" else name): value for name, value in self if value is not None
        }


class Answer(BaseModel):
    """What a rule (or ``otherwise``) answers: a decision, an amount, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: bool | None = None
    amount: float | None = Field(default=None, ge=0)


class Rule(Answer):
    """Conditions on features (AND-ed) leading to an answer."""

    when: dict[str, Comparison] = Field(min_length=1)


class FallbackRuleSet(BaseModel):
    """A versioned, ordered list of rules and the answer when none matches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    rules: list[Rule] = Field(default_factory=list)
    otherwise: Answer

    def problems(
        self, features: Mapping[str, FeatureType], *, decision: bool, amount: bool
    ) -> list[str]:
        """What makes these rules unfit for a model with ``features`` and these outcomes."""
        found: list[str] = []
        answers: list[tuple[str, Answer]] = [(f"rules[{i}]", r) for i, r in enumerate(self.rules)]
        answers.append(("otherwise", self.otherwise))
        for at, answer in answers:
            if decision and answer.decision is None:
                found.append(f"{at}.decision: required (the model decides)")
            if amount and answer.amount is None:
                found.append(f"{at}.amount: required (the model grants an amount)")
            if not decision and answer.decision is not None:
                found.append(f"{at}.decision: the model has no decision outcome")
            if not amount and answer.amount is not None:
                found.append(f"{at}.amount: the model has no amount outcome")
        for index, rule in enumerate(self.rules):
            for feature, comparison in rule.when.items():
                at = f"rules[{index}].when.{feature}"
                kind = features.get(feature)
                if kind is None:
                    found.append(f"{at}: not a declared feature (declared: {sorted(features)})")
                    continue
                for operator, value in comparison.operators().items():
                    values = value if operator == "in" else [value]
                    if kind == "numeric" and any(isinstance(v, (str, bool)) for v in values):
                        found.append(f"{at}.{operator}: {feature!r} is numeric; compare numbers")
                    if kind == "categorical" and operator in _ORDERING:
                        found.append(
                            f"{at}.{operator}: {feature!r} is categorical; use eq, ne or in"
                        )
        return found


def yaml_path(loc: tuple[Any, ...]) -> str:
    """``('rules', 2, 'when', 'tenure', 'lt')`` as ``rules[2].when.tenure.lt``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def parse_rules(
    text: str,
    features: Mapping[str, FeatureType],
    *,
    decision: bool,
    amount: bool,
) -> FallbackRuleSet:
    """The rule set in YAML ``text``, checked against the model's features and outcomes.

    Raises :class:`RulesError` listing every problem with its YAML path.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RulesError([f"(top level): not valid YAML: {error}"]) from None
    if not isinstance(document, dict):
        raise RulesError(["(top level): expected a mapping with version, rules and otherwise"])
    try:
        rules = FallbackRuleSet.model_validate(document)
    except ValidationError as error:
        raise RulesError(
            [f"{yaml_path(_yaml_loc(e['loc']))}: {e['msg']}" for e in error.errors()]
        ) from None
    problems = rules.problems(features, decision=decision, amount=amount)
    if problems:
        raise RulesError(problems)
    return rules


def _yaml_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic's location without its union-member tags (``float``, ``str``...)."""
    return tuple(
        part
        for part in loc
        if not (isinstance(part, str) and part in ("float", "bool", "str", "list[...]"))
    )


def rules_digest(text: str) -> str:
    """The sha256 a rules file is pinned by (of its UTF-8 bytes)."""
    return hashlib.sha256(text.encode()).hexdigest()

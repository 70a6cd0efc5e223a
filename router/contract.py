"""A deployed model's contract: what a request must carry, and how the log keys it.

Built once per deployment from the model's manifest and fallback rules, and held in
memory beside the loaded versions. It validates requests against the declared features
(names and types), protected attributes (and their groups, when declared) and column
strata, naming the field at fault; and it turns valid requests into the one DataFrame
the models and the rules score, and the group and stratum keys the decision log and
metrics are keyed by.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from contracts.fallback_rules import RulesError, parse_rules, rules_digest
from contracts.model import ModelManifest
from router.rules import RulesEngine
from router.schemas import DecisionRequest, FallbackDocument

Loc = tuple[str | int, ...]


class ContractError(ValueError):
    """A deployment whose manifest or fallback rules the gateway cannot serve."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


class RequestError(ValueError):
    """Requests that break the contract; ``errors`` are FastAPI-style ``loc``/``msg`` dicts."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class ModelContract:
    """The runtime form of a deployment's manifest and rules."""

    manifest: ModelManifest
    fallback: RulesEngine | None

    @classmethod
    def build(cls, manifest: ModelManifest, fallback: FallbackDocument | None) -> ModelContract:
        """The contract, or :class:`ContractError` naming the field it cannot serve."""
        if not manifest.features:
            raise ContractError(
                ("manifest", "features"), "declare the model's features (names and types)"
            )
        engine = None
        if fallback is not None:
            if rules_digest(fallback.content) != fallback.sha256:
                raise ContractError(
                    ("fallback", "sha256"),
                    "the rules do not have the sha256 they were pinned by; refused",
                )
            try:
                rules = parse_rules(
                    fallback.content,
                    {f.name: f.type for f in manifest.features},
                    decision=manifest.outcomes.decision is not None,
                    amount=manifest.outcomes.amount is not None,
                )
            except RulesError as error:
                raise ContractError(("fallback", "content"), str(error)) from error
            engine = RulesEngine(
                rules,
                decides=manifest.outcomes.decision is not None,
                grants=manifest.outcomes.amount is not None,
            )
        return cls(manifest=manifest, fallback=engine)

    @property
    def decides(self) -> bool:
        return self.manifest.outcomes.decision is not None

    @property
    def grants(self) -> bool:
        return self.manifest.outcomes.amount is not None

    def check(self, requests: Sequence[DecisionRequest], at: Loc = ("body",)) -> None:
        """Raise :class:`RequestError` naming every field of ``requests`` that breaks the contract.

        ``at`` prefixes each location (a batch passes ``("body", "records")`` and the
        index of each record is added).
        """
        errors: list[dict[str, Any]] = []
        batch = len(at) > 1
        for index, request in enumerate(requests):
            where = (*at, index) if batch else at
            errors += self._problems(request, where)
        if errors:
            raise RequestError(errors)

    def _problems(self, request: DecisionRequest, at: Loc) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        def problem(loc: Loc, message: str, kind: str) -> None:
            found.append({"loc": [*at, *loc], "msg": message, "type": kind})

        declared = {f.name: f.type for f in self.manifest.features}
        for name in request.features:
            if name not in declared:
                problem(("features", name), "not a feature of the model", "unknown_feature")
        for name, kind in declared.items():
            if name not in request.features:
                problem(("features", name), "missing", "missing_feature")
                continue
            value = request.features[name]
            if kind == "numeric" and (
                isinstance(value, (bool, str)) or not math.isfinite(float(value))
            ):
                problem(("features", name), "must be a finite number", "wrong_type")
            if kind == "categorical" and isinstance(value, (bool, float)):
                problem(("features", name), "must be a category (a string)", "wrong_type")
        attributes = self.manifest.protected_attributes
        for name in request.attributes:
            if name not in attributes:
                problem(("attributes", name), "not a protected attribute", "unknown_attribute")
        for name in attributes:
            group = request.attributes.get(name)
            if group is None:
                problem(("attributes", name), "missing", "missing_attribute")
            elif name in self.manifest.groups and group not in self.manifest.groups[name]:
                problem(
                    ("attributes", name),
                    f"unknown group {group!r} (declared: {self.manifest.groups[name]})",
                    "unknown_group",
                )
        columns = [s for s in self.manifest.strata if s not in self.manifest.bins]
        for name in request.strata:
            if name not in columns:
                problem(("strata", name), "not a stratum column of the model", "unknown_stratum")
        for name in columns:
            if name not in request.strata and name not in request.features:
                problem(("strata", name), "missing", "missing_stratum")
        return found

    def frame(self, requests: Sequence[DecisionRequest]) -> pd.DataFrame:
        """The requests' features as one DataFrame, columns in the declared order."""
        names = self.manifest.feature_names
        return pd.DataFrame.from_records(
            [[r.features[name] for name in names] for r in requests], columns=names
        )

    def keys(self, request: DecisionRequest) -> tuple[str, str]:
        """The group and stratum keys the decision log records ``request`` under."""
        record = {**request.features, **request.strata, **request.attributes}
        return self.manifest.group_of(record), self.manifest.stratum_of(record)

"""The strategies remediation can try, as data; and the one place playbook strategies become them.

A playbook names a strategy and a few choices (``include_suspected``, ``constraint``);
the engine's specs carry every setting a strategy has, with defaults, so a notebook or a
benchmark can tune what a playbook does not expose. :func:`from_playbook` is the single
translation between the two.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from playbooks.steps import RemediationStrategy

ProxyScope = Literal["confirmed", "suspected"]
"""Which proxies a strategy acts on: those attribution confirmed, or the suspected ones too."""


class _Strategy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DropProxies(_Strategy):
    """Retrain without the proxies ("suspected" drops the suspected ones too)."""

    kind: Literal["drop_proxies"] = "drop_proxies"
    proxies: ProxyScope = "confirmed"


class TransformProxies(_Strategy):
    """Replace categorical proxies by ``regions`` group-balanced regions; drop numeric ones.

    ``columns`` restricts the transform to the named proxy columns (the others are left
    as they are); empty: every proxy in scope.
    """

    kind: Literal["transform_proxies"] = "transform_proxies"
    proxies: ProxyScope = "confirmed"
    regions: int = Field(default=4, ge=2)
    columns: list[str] = Field(default_factory=list)


class Reweigh(_Strategy):
    """Kamiran-Calders reweighing, after dropping ``proxies`` (none by default)."""

    kind: Literal["reweigh"] = "reweigh"
    proxies: Literal["none", "confirmed", "suspected"] = "none"
    amount_bins: int = Field(default=4, ge=1)


class Constrained(_Strategy):
    """ExponentiatedGradient under a fairness constraint, after dropping ``proxies``."""

    kind: Literal["constrained"] = "constrained"
    constraint: Literal["equalized_odds", "demographic_parity"] = "equalized_odds"
    difference_bound: float = Field(default=0.02, gt=0.0, le=1.0)
    eps: float = Field(default=0.01, gt=0.0)
    max_iter: int = Field(default=15, ge=1)
    proxies: Literal["none", "confirmed", "suspected"] = "none"


class Threshold(_Strategy):
    """Group-specific thresholds on the parent's scores (needs the group at serving time)."""

    kind: Literal["threshold"] = "threshold"
    constraint: Literal["equalized_odds", "demographic_parity"] = "equalized_odds"
    objective: Literal["accuracy_score", "balanced_accuracy_score"] = "accuracy_score"


StrategySpec = Annotated[
    DropProxies | TransformProxies | Reweigh | Constrained | Threshold,
    Field(discriminator="kind"),
]


def from_playbook(strategy: RemediationStrategy) -> StrategySpec:
    """The engine's spec for a playbook's strategy (``external`` is not the engine's: it
    is trained by the team's own pipeline, see ``activities/external_training.py``)."""
    scope: ProxyScope = "suspected" if strategy.include_suspected else "confirmed"
    constraint = strategy.constraint or "equalized_odds"
    match strategy.name:
        case "drop_proxies":
            return DropProxies(proxies=scope)
        case "transform_proxies":
            return TransformProxies(proxies=scope)
        case "reweigh":
            return Reweigh(proxies=scope if strategy.include_suspected else "none")
        case "constrained":
            return Constrained(constraint=constraint)
        case "threshold":
            return Threshold(constraint=constraint)
        case "external":
            raise ValueError("the external strategy is trained by the team's pipeline")


def named(strategies: list[StrategySpec]) -> list[tuple[str, StrategySpec]]:
    """Readable, unique names: the kind and the settings that differ from the defaults."""
    result: list[tuple[str, StrategySpec]] = []
    seen: dict[str, int] = {}
    for spec in strategies:
        settings = spec.model_dump(exclude_defaults=True, exclude={"kind"})
        name = spec.kind + (
            "(" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")" if settings else ""
        )
        seen[name] = seen.get(name, 0) + 1
        result.append((name if seen[name] == 1 else f"{name}#{seen[name]}", spec))
    return result

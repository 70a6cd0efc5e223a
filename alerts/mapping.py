"""Which registered model each alert is about, and the alerts of a delivery grouped by it.

Alertmanager knows nothing of Fairlane's models, so the model travels in a label
(the first present of ``settings.alert_model_labels``, ``fairlane_model`` then
``model`` by default); the generic format names it outright. Either way the model
must be registered: the watch an alert starts needs the model's router and default
playbook, and an alert for a model Fairlane cannot contain is a configuration
mistake the sender should hear about now, not a signal nobody will ever act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from alerts.problems import AlertRejected, FieldProblem, Loc
from contracts.alerts import AlertEvent
from contracts.model import ModelManifest

ModelLookup = Callable[[str], ModelManifest | None]


class ModelClaim(NamedTuple):
    model: str
    field: Loc
    """Where in the alert the model was named, e.g. ``("labels", "fairlane_model")``."""


class InboundAlert(Protocol):
    """One alert of a wire format, before Fairlane knows its model."""

    def model_claim(self, label_names: Sequence[str]) -> ModelClaim | None: ...

    def to_event(self, model: str) -> AlertEvent: ...


def model_from_labels(labels: Mapping[str, str], label_names: Sequence[str]) -> ModelClaim | None:
    """The first of ``label_names`` the alert carries with a non-empty value."""
    for name in label_names:
        if labels.get(name):
            return ModelClaim(labels[name], ("labels", name))
    return None


@dataclass
class ModelAlerts:
    manifest: ModelManifest
    events: list[AlertEvent] = field(default_factory=list)


def alerts_by_model(
    alerts: Sequence[InboundAlert], label_names: Sequence[str], lookup: ModelLookup
) -> dict[str, ModelAlerts]:
    """Normalise every alert and group it by model, or refuse the delivery naming each
    alert whose model is missing or unregistered (each model is looked up once)."""
    problems: list[FieldProblem] = []
    manifests: dict[str, ModelManifest | None] = {}
    grouped: dict[str, ModelAlerts] = {}
    for index, alert in enumerate(alerts):
        claim = alert.model_claim(label_names)
        if claim is None:
            expected = ", ".join(label_names)
            problems.append(
                FieldProblem(
                    ("alerts", index, "labels"),
                    f"no label names the model; expected one of: {expected}",
                    "model_label_missing",
                )
            )
            continue
        if claim.model not in manifests:
            manifests[claim.model] = lookup(claim.model)
        manifest = manifests[claim.model]
        if manifest is None:
            problems.append(
                FieldProblem(
                    ("alerts", index, *claim.field),
                    f"model {claim.model!r} is not registered",
                    "model_not_registered",
                )
            )
            continue
        grouped.setdefault(manifest.id, ModelAlerts(manifest)).events.append(
            alert.to_event(manifest.id)
        )
    if problems:
        raise AlertRejected(problems)
    return grouped

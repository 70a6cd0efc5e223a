"""The generic JSON alert, for any monitor that is not Alertmanager.

    POST /v1/alerts
    {"alerts": [{"model": "credit-limit", "name": "ApprovalGap", "status": "firing",
                 "starts_at": "2026-11-23T18:41:59Z", "summary": "...",
                 "labels": {"severity": "critical"}}]}

Always an ``alerts`` list (one alert is a list of one), so a sender has one shape
to get right. Strict where Alertmanager's format is lenient: unknown fields are
refused (a typo such as ``startsAt`` or ``fingerprnt`` would otherwise silently
change what the alert means) and times must carry a timezone.

Deduplication works as for Alertmanager, by ``(fingerprint, starts_at)``. A sender
that has no fingerprint of its own gets a stable one derived from model, name and
labels, so posting the same alert again is recognised as a repeat; it must then
keep ``starts_at`` fixed for as long as the condition lasts, and a new
``starts_at`` means the condition fired again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from alerts.mapping import ModelClaim
from contracts.alerts import AlertEvent, AlertSource, AlertStatus


class GenericAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=63, description="id of a registered model")
    name: str = Field(min_length=1, max_length=200, description="what fired, e.g. ApprovalGap")
    status: AlertStatus = AlertStatus.FIRING
    fingerprint: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the alert's identity across posts; default: sha256 of model, name, labels",
    )
    starts_at: AwareDatetime = Field(description="when the condition began (ISO 8601, with zone)")
    ends_at: AwareDatetime | None = Field(default=None, description="when it ended, if resolved")
    summary: str = Field(default="", max_length=4000)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generator_url: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.ends_at is not None and self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")
        return self

    def stable_fingerprint(self) -> str:
        """The sender's fingerprint, or one that is the same for the same model, name, labels."""
        if self.fingerprint is not None:
            return self.fingerprint
        identity = json.dumps([self.model, self.name, sorted(self.labels.items())])
        return hashlib.sha256(identity.encode()).hexdigest()

    def model_claim(self, label_names: Sequence[str]) -> ModelClaim:
        return ModelClaim(self.model, ("model",))

    def to_event(self, model: str) -> AlertEvent:
        return AlertEvent(
            model=model,
            source=AlertSource.WEBHOOK,
            fingerprint=self.stable_fingerprint(),
            status=self.status,
            name=self.name,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            summary=self.summary,
            labels=self.labels,
            annotations=self.annotations,
            generator_url=self.generator_url,
        )


class GenericPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alerts: list[GenericAlert] = Field(min_length=1)

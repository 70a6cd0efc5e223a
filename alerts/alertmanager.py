"""Prometheus Alertmanager's webhook payload (version 4), exactly as Alertmanager sends it.

Field names are Alertmanager's own (``startsAt``, ``generatorURL``...), so errors
name the field the operator can find in Alertmanager's docs and logs. Unknown
fields are ignored: Alertmanager has added fields within version 4 before
(``truncatedAlerts``) and a newer one must not be turned away for it.

Two things of Alertmanager's shape the normalisation:

- every notification is the full current state of its group, firing and resolved
  alerts together, re-sent on every change and on retries, so alerts are passed on
  as they are and the watch diffs them by ``(fingerprint, startsAt)``;
- a firing alert's ``endsAt`` is Go's zero time, ``0001-01-01T00:00:00Z``: it means
  "not ended", so it becomes ``None``.

Samples captured from the real binary live in ``tests/fixtures/alertmanager/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from alerts.mapping import ModelClaim, model_from_labels
from contracts.alerts import AlertEvent, AlertSource, AlertStatus

SUPPORTED_VERSION = "4"
SUMMARY_ANNOTATIONS = ("summary", "description")
_NAME_LIMIT = 200
_SUMMARY_LIMIT = 4000


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AlertmanagerAlert(_Wire):
    status: AlertStatus
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(
        default=None, alias="endsAt", description="Go's zero time while the alert fires"
    )
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=200)

    @field_validator("ends_at")
    @classmethod
    def _zero_time_is_unset(cls, value: datetime | None) -> datetime | None:
        return None if value is not None and value.year == 1 else value

    def model_claim(self, label_names: Sequence[str]) -> ModelClaim | None:
        return model_from_labels(self.labels, label_names)

    def to_event(self, model: str) -> AlertEvent:
        """The alert as Fairlane holds it; all labels (``severity`` among them) are kept."""
        summary = next(
            (self.annotations[k] for k in SUMMARY_ANNOTATIONS if self.annotations.get(k)), ""
        )
        return AlertEvent(
            model=model,
            source=AlertSource.ALERTMANAGER,
            fingerprint=self.fingerprint,
            status=self.status,
            # Prometheus always sets alertname; alerts posted straight to Alertmanager
            # may not, and the fingerprint is then the only stable name there is.
            name=(self.labels.get("alertname") or self.fingerprint)[:_NAME_LIMIT],
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            summary=summary[:_SUMMARY_LIMIT],
            labels=self.labels,
            annotations=self.annotations,
            generator_url=self.generator_url or None,
        )


class AlertmanagerPayload(_Wire):
    """One webhook notification: a group's alerts, and the labels that formed the group."""

    version: str
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(
        default=0,
        ge=0,
        alias="truncatedAlerts",
        description="alerts Alertmanager left out because of the receiver's max_alerts",
    )
    status: AlertStatus
    receiver: str
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AlertmanagerAlert] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _version_4(cls, value: str) -> str:
        if value != SUPPORTED_VERSION:
            raise PydanticCustomError(
                "unsupported_version",
                "Alertmanager webhook payload version {version} is not supported; "
                "Fairlane reads version 4",
                {"version": repr(value)},
            )
        return value

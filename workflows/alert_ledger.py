"""Diffing alert deliveries against the alerts a watch already holds.

Alertmanager re-sends the whole group on every notification and retries on failure,
so most alerts a watch receives are repeats. What counts is ``(fingerprint,
starts_at)``: the same pair again is a repeat; the same fingerprint with a later
``starts_at`` is the condition firing again (after a resolution the watch may or may
not have seen); an earlier ``starts_at`` is a late delivery of an old episode.
A snapshot that arrives late never undoes a resolution.

Pure and deterministic: it runs inside the watch workflow.
"""

from __future__ import annotations

from datetime import datetime

from contracts.alerts import AlertEvent, AlertKind, AlertStatus
from contracts.watch import HELD_ALERTS_LIMIT, HeldAlert

TRIGGERING = frozenset({AlertKind.NEW, AlertKind.REFIRED})
"""Kinds that mean a condition has just started firing: they open an incident when the
model has none."""


def classify(held: dict[str, HeldAlert], alert: AlertEvent, at: datetime) -> AlertKind:
    """What ``alert`` means given ``held``, which it then updates."""
    known = held.get(alert.fingerprint)
    kind = _kind(known, alert)
    if kind in TRIGGERING:
        held[alert.fingerprint] = HeldAlert(
            fingerprint=alert.fingerprint,
            name=alert.name,
            source=alert.source,
            starts_at=alert.starts_at,
            status=AlertStatus.FIRING,
            last_seen=at,
        )
    elif known is not None:
        known.last_seen = at
        known.deliveries += 1
        if kind is AlertKind.RESOLVED:
            known.status = AlertStatus.RESOLVED
    return kind


def _kind(known: HeldAlert | None, alert: AlertEvent) -> AlertKind:
    firing = alert.status is AlertStatus.FIRING
    if known is None:
        return AlertKind.NEW if firing else AlertKind.STALE
    if alert.starts_at > known.starts_at:
        return AlertKind.REFIRED if firing else AlertKind.STALE
    if alert.starts_at < known.starts_at:
        return AlertKind.STALE
    if firing or known.status is AlertStatus.RESOLVED:
        return AlertKind.REPEAT
    return AlertKind.RESOLVED


def forget_oldest(held: dict[str, HeldAlert], limit: int = HELD_ALERTS_LIMIT) -> None:
    """Keep the ``limit`` most recently seen alerts, firing ones first, so the memory a
    watch carries across continue-as-new stays bounded."""
    if len(held) <= limit:
        return
    keep = sorted(
        held.values(),
        key=lambda h: (h.status is AlertStatus.FIRING, h.last_seen),
        reverse=True,
    )[:limit]
    kept = {h.fingerprint for h in keep}
    for fingerprint in [f for f in held if f not in kept]:
        del held[fingerprint]

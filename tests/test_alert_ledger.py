"""Diffing Alertmanager deliveries against what the watch holds (workflows/alert_ledger.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.alerts import AlertEvent, AlertKind, AlertSource, AlertStatus
from contracts.watch import HeldAlert
from workflows.alert_ledger import classify, forget_oldest

T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)
LATER, EARLIER = T0 + timedelta(hours=1), T0 - timedelta(hours=1)
FIRING, RESOLVED = AlertStatus.FIRING, AlertStatus.RESOLVED


def alert(status: AlertStatus, starts_at: datetime, fingerprint: str = "fp") -> AlertEvent:
    return AlertEvent(
        model="credit-limit",
        source=AlertSource.ALERTMANAGER,
        fingerprint=fingerprint,
        status=status,
        name="Gap",
        starts_at=starts_at,
    )


@pytest.mark.parametrize(
    ("history", "incoming", "kind"),
    [
        ([], (FIRING, T0), AlertKind.NEW),
        ([], (RESOLVED, T0), AlertKind.STALE),  # never seen firing: nothing to resolve
        ([(FIRING, T0)], (FIRING, T0), AlertKind.REPEAT),
        ([(FIRING, T0)], (RESOLVED, T0), AlertKind.RESOLVED),
        ([(FIRING, T0), (RESOLVED, T0)], (RESOLVED, T0), AlertKind.REPEAT),
        ([(FIRING, T0), (RESOLVED, T0)], (FIRING, T0), AlertKind.REPEAT),  # late snapshot
        ([(FIRING, T0), (RESOLVED, T0)], (FIRING, LATER), AlertKind.REFIRED),
        ([(FIRING, T0)], (FIRING, LATER), AlertKind.REFIRED),  # its resolution was missed
        ([(FIRING, T0)], (FIRING, EARLIER), AlertKind.STALE),
        ([(FIRING, T0)], (RESOLVED, LATER), AlertKind.STALE),
    ],
)
def test_what_an_alert_means(
    history: list[tuple[AlertStatus, datetime]],
    incoming: tuple[AlertStatus, datetime],
    kind: AlertKind,
) -> None:
    held: dict[str, HeldAlert] = {}
    for status, starts_at in history:
        classify(held, alert(status, starts_at), T0)
    assert classify(held, alert(*incoming), LATER) is kind


def test_a_late_snapshot_never_undoes_a_resolution() -> None:
    held: dict[str, HeldAlert] = {}
    for status in (FIRING, RESOLVED, FIRING):
        classify(held, alert(status, T0), T0)
    assert held["fp"].status is RESOLVED and held["fp"].deliveries == 3


def test_the_memory_keeps_firing_alerts_and_the_most_recent() -> None:
    held: dict[str, HeldAlert] = {}
    classify(held, alert(FIRING, T0, "old-but-firing"), T0)
    for i in range(5):
        seen = T0 + timedelta(minutes=i + 1)
        classify(held, alert(FIRING, T0, f"r{i}"), seen)
        classify(held, alert(RESOLVED, T0, f"r{i}"), seen)
    forget_oldest(held, limit=3)
    assert set(held) == {"old-but-firing", "r4", "r3"}

"""The demo's last act: an Alertmanager storm about the promoted model, and no human.

A Prometheus rule on the promoted version fires; Alertmanager re-sends its group
again and again, as it does, while the demo's "alertmanager" principal posts it
concurrently to the API. The watch contains the model and opens exactly one incident;
every notification lands on it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from router.client import RouterClient

NOTIFICATIONS = 200
ALERTS_SENDER = "alertmanager"


class FairlaneApi(Protocol):
    async def ok(self, who: str, method: str, path: str, **kwargs: Any) -> Any: ...


def notification(model: str, fired_at: datetime, alerts: int) -> dict[str, Any]:
    """One Alertmanager v4 webhook body: the group's ``alerts`` firing alerts."""
    members = [
        {
            "status": "firing",
            "labels": {
                "alertname": "CreditLimitGap",
                "fairlane_model": model,
                "severity": "page",
                "income_band": band,
            },
            "annotations": {"summary": f"group B limits below group A in income band {band}"},
            "startsAt": fired_at.isoformat(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example/graph?g0.expr=fairlane_limit_gap",
            "fingerprint": f"demo{index:012x}",
        }
        for index, band in enumerate(["20-30k", "40-50k", "60-70k"][:alerts])
    ]
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="CreditLimitGap", fairlane_model="{model}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "fairlane",
        "groupLabels": {"alertname": "CreditLimitGap", "fairlane_model": model},
        "commonLabels": {"alertname": "CreditLimitGap", "fairlane_model": model},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": members,
    }


async def alert_storm(api: FairlaneApi, router: RouterClient, model: str) -> None:
    print(
        f"\n8. An alert on the promoted model, sent by Alertmanager {NOTIFICATIONS} times:",
        flush=True,
    )
    fired_at = datetime.now(UTC) - timedelta(minutes=1)
    # The group grows from one alert to three as more income bands cross the threshold.
    bodies = [
        notification(model, fired_at, 1 + i * 3 // NOTIFICATIONS) for i in range(NOTIFICATIONS)
    ]
    gate = asyncio.Semaphore(16)

    async def send(body: dict[str, Any]) -> None:
        async with gate:
            await api.ok(ALERTS_SENDER, "POST", "/v1/alerts/alertmanager", json=body)

    await asyncio.gather(*(send(body) for body in bodies))
    sent = sum(len(body["alerts"]) for body in bodies)
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        watch = await api.ok("ana.auditor", "GET", f"/v1/models/{model}/watch")
        if watch["memory"]["counts"]["received"] == sent or (
            asyncio.get_running_loop().time() > deadline
        ):
            break
        await asyncio.sleep(0.25)
    counts = watch["memory"]["counts"]
    incidents = watch["memory"]["incidents"]
    route = await router.get_route(model)
    print(
        f"  {sent} alerts received by the watch: {counts['new']} new, {counts['repeat']} "
        f"repeats; incidents opened: {len(incidents)}"
    )
    for incident in incidents:
        print(f"  {incident['incident_id']} ({incident['source']}): {incident['reason']}")
    print(f"  router: serving {route.serving.value}, shadow {route.shadow_versions}")

"""PagerDuty Events API v2 events: one PagerDuty incident per Fairlane incident.

``dedup_key`` is the Fairlane incident id, so every trigger about one incident lands on
the same PagerDuty incident (PagerDuty itself drops a re-sent trigger), and the
acknowledge and resolve that follow find it.
"""

from __future__ import annotations

from typing import Any, Literal

from contracts.channels import NotificationEvent
from notifications.messages import OutgoingMessage

EventAction = Literal["trigger", "acknowledge", "resolve"]
SUMMARY_LIMIT = 1024
SEVERITY = {"sev1": "critical", "sev2": "error", "sev3": "warning", "sev4": "info"}


def event_action(event: NotificationEvent) -> EventAction:
    """Containment confirmed acknowledges; the incident closing resolves; else trigger."""
    if event == "containment_confirmed":
        return "acknowledge"
    if event == "incident_closed":
        return "resolve"
    return "trigger"


def pagerduty_event(message: OutgoingMessage, routing_key: str) -> dict[str, Any]:
    n = message.notification
    action = event_action(n.event)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": n.incident_id,
    }
    if action != "trigger":
        return event  # the documented acknowledge / resolve body has nothing else
    summary = message.subject if len(message.subject) <= SUMMARY_LIMIT else message.subject[:1023]
    return {
        **event,
        "payload": {
            "summary": summary,
            "source": "fairlane",
            "severity": SEVERITY.get(n.severity, "error"),
            "class": n.event,
            "group": "fairlane",
            "custom_details": {
                "incident_id": n.incident_id,
                "message": n.message,
                "console": message.link,
                "idempotency_key": message.idempotency_key,
            },
        },
        "client": "Fairlane",
        "client_url": message.link,
        "links": [{"href": message.link, "text": "Open in the Fairlane console"}],
    }

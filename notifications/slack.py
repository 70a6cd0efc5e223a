"""A Slack incoming-webhook payload in Block Kit, within Slack's documented limits.

A sign-off message gets Approve and Reject buttons that are *links* to the console's
sign-off page: nobody approves in Slack (approval happens in the console, signed in,
reading the assessment it binds to). Slack still posts a click back to the app's
interactivity URL, which Fairlane verifies and records (api/slack.py).
"""

from __future__ import annotations

from typing import Any

from notifications.messages import OutgoingMessage

APPROVE_ACTION = "fairlane.signoff.approve"
REJECT_ACTION = "fairlane.signoff.reject"
OPEN_ACTION = "fairlane.incident.open"
ACTIONS = (APPROVE_ACTION, REJECT_ACTION, OPEN_ACTION)
HEADER_LIMIT = 150
SECTION_LIMIT = 3000


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(kind: str, text: str, limit: int) -> dict[str, str]:
    return {"type": kind, "text": _clip(text, limit)}


def _button(text: str, action_id: str, url: str, value: str, style: str | None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "url": url,
        "value": value,
    }
    if style is not None:
        button["style"] = style
    return button


def slack_payload(message: OutgoingMessage) -> dict[str, Any]:
    n = message.notification
    if message.asks_for_signoff:
        buttons = [
            _button("Approve…", APPROVE_ACTION, message.link, n.incident_id, "primary"),
            _button("Reject…", REJECT_ACTION, message.link, n.incident_id, "danger"),
        ]
    else:
        buttons = [_button("Open incident", OPEN_ACTION, message.link, n.incident_id, None)]
    return {
        "text": _clip(f"{message.subject}: {n.message}", SECTION_LIMIT),
        "blocks": [
            {"type": "header", "text": _text("plain_text", message.subject, HEADER_LIMIT)},
            {"type": "section", "text": _text("mrkdwn", n.message, SECTION_LIMIT)},
            {"type": "actions", "block_id": "fairlane-console", "elements": buttons},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"Incident `{n.incident_id}` · {n.severity} · "
                        f"idempotency key `{message.idempotency_key}`",
                    }
                ],
            },
        ],
    }

"""What Slack posts back: a click on a Fairlane message's button, verified and recorded.

The Approve and Reject buttons Fairlane puts in Slack are links to the console's
sign-off page; clicking one also makes Slack post the click here (Slack posts every
interaction to the app's interactivity URL). This route approves nothing: a decision
is taken in the console, signed in, on the assessment it binds to. It proves the
request is Slack's (its signing secret, a timestamp within 5 minutes; 401 otherwise,
and nothing is recorded), then records who clicked what on the incident's trail.

Its authentication is Slack's signature, not a bearer token: Slack holds no Fairlane
token, and the signature proves the sender knows the app's signing secret.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Annotated
from urllib.parse import parse_qs

import structlog
from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.incidents import INCIDENT_ID
from audit.trail import AuditTrail
from config import Settings
from contracts.audit import AuditEvent
from notifications.slack import ACTIONS
from notifications.slack_signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SlackSignatureError,
    verify_slack_request,
)

router = APIRouter(prefix="/v1/integrations/slack", tags=["integrations"])
log = structlog.get_logger(__name__)
SLACK_ACTION = "slack.action"
_INCIDENT = re.compile(INCIDENT_ID)


class SlackUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    username: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    team_id: str | None = Field(default=None, max_length=64)


class SlackAction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action_id: str = Field(max_length=255)
    value: str | None = Field(default=None, max_length=2000)
    action_ts: str | None = None


class SlackInteraction(BaseModel):
    """The parts of Slack's ``block_actions`` payload Fairlane reads."""

    model_config = ConfigDict(extra="ignore")

    type: str
    user: SlackUser
    actions: Annotated[list[SlackAction], Field(min_length=1, max_length=25)]


@router.post("/actions", status_code=status.HTTP_200_OK, response_class=Response)
async def slack_action(request: Request) -> Response:
    """Verify Slack's signature; record each Fairlane button click on its incident's trail."""
    settings: Settings = request.app.state.settings
    secret = settings.slack_signing_secret
    if secret is None:
        raise HTTPException(  # nothing can verify the sender, so nobody is authenticated
            status.HTTP_401_UNAUTHORIZED,
            "Slack interactivity is not configured on this API (FAIRLANE_SLACK_SIGNING_SECRET): "
            "no request can be verified as Slack's",
        )
    body = await request.body()
    try:
        verify_slack_request(
            secret,
            body,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            time.time(),
            settings.slack_signature_tolerance_s,
        )
    except SlackSignatureError as error:
        log.warning("slack callback refused", reason=str(error))
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(error)) from None
    interaction = _interaction(body)
    trail: AuditTrail = request.app.state.trail
    request_id = hashlib.sha256(body).hexdigest()[:32]
    for index, action in enumerate(interaction.actions):
        if action.action_id not in ACTIONS or not _INCIDENT.match(action.value or ""):
            continue  # not one of Fairlane's buttons: nothing to record
        trail.append(
            AuditEvent(
                event_id=f"slack:{request_id}:{index}",  # a re-sent request records nothing
                incident_id=action.value,
                kind=SLACK_ACTION,
                actor=f"slack:{interaction.user.team_id or '-'}:{interaction.user.id}",
                detail={
                    "action": action.action_id,
                    "slack_user": interaction.user.username or interaction.user.name,
                    "note": "a click in Slack opens the console; it approves nothing",
                },
            )
        )
    return Response(status_code=status.HTTP_200_OK)


def _interaction(body: bytes) -> SlackInteraction:
    """The form field ``payload`` (JSON), as Slack sends it; 400 naming what is wrong."""
    fields = parse_qs(body.decode("utf-8", "replace"))
    raw = fields.get("payload")
    if not raw:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "form field `payload` is missing")
    try:
        return SlackInteraction.model_validate(json.loads(raw[0]))
    except json.JSONDecodeError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "form field `payload` is not JSON"
        ) from None
    except ValidationError as error:
        problems = "; ".join(
            f"payload.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise HTTPException(status.HTTP_400_BAD_REQUEST, problems) from None

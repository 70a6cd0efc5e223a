"""The codec endpoint: how an auditor's Temporal Web UI reads encrypted histories.

Payloads in Temporal are AES-GCM ciphertext (``stack/codec.py``). Temporal's Web UI
(and the ``temporal`` CLI, ``--codec-endpoint``) can be pointed at a codec server to
show them decoded; this is it, in the API, behind the same bearer tokens: auditors and
admins only. It speaks the codec server protocol: ``{"payloads": [...]}`` in, the
same out, each payload as protobuf JSON. There is no ``/encode``: nobody needs to make
ciphertext through the API. The UI's origin (``FAIRLANE_TEMPORAL_UI_URL``) may call it
from the browser (CORS); the token must still be sent.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from google.protobuf import json_format
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload

from api.deps import AuditorOrAdmin, PayloadCodecDep
from stack.codec import PayloadKeyError

router = APIRouter(prefix="/v1/codec", tags=["codec"])
MAX_PAYLOADS = 1000


class Payloads(BaseModel):
    payloads: list[dict[str, Any]] = Field(max_length=MAX_PAYLOADS)


@router.post("/decode", response_model=Payloads)
async def decode(body: Payloads, codec: PayloadCodecDep, _: AuditorOrAdmin) -> Payloads:
    try:
        payloads = [json_format.ParseDict(p, Payload()) for p in body.payloads]
    except json_format.ParseError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"payloads: {error}") from error
    if codec is None:
        return body  # encryption off: nothing to decode
    try:
        decoded = await codec.decode(payloads)
    except (PayloadKeyError, ValueError) as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    return Payloads(payloads=[json_format.MessageToDict(p) for p in decoded])

"""Payload encryption: what Fairlane puts in Temporal is ciphertext, readable with the keys.

Unit cases on the codec (round trip, rotation, unknown keys, plaintext passing through,
the key file made once and private), an incident on the real dev server whose history
holds no plaintext payload, and the codec endpoint an auditor's Web UI decodes through.
"""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import uuid
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from config import Settings
from playbooks.loader import builtin_playbook
from stack.codec import ENCODING, AesGcmCodec, PayloadKeyError, PayloadKeys, payload_keys
from tests.fixtures.api import Api
from tests.fixtures.incidents import incident_input, start_incident, wait_for_phase
from tests.fixtures.services import RouterService

K1, K2 = b"1" * 32, b"2" * 32
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"comment": "looks fine to legal"}')


async def test_a_payload_round_trips_and_its_ciphertext_says_nothing() -> None:
    codec = AesGcmCodec(PayloadKeys(current="k1", keys={"k1": K1}))
    [sealed] = await codec.encode([PLAIN])
    assert sealed.metadata["encoding"] == ENCODING
    assert b"looks fine" not in sealed.data and b"json/plain" not in sealed.data
    assert await codec.decode([sealed]) == [PLAIN]


async def test_keys_rotate_old_payloads_still_open_new_ones_use_the_current_key() -> None:
    [old] = await AesGcmCodec(PayloadKeys(current="k1", keys={"k1": K1})).encode([PLAIN])
    rotated = AesGcmCodec(PayloadKeys(current="k2", keys={"k1": K1, "k2": K2}))
    assert await rotated.decode([old]) == [PLAIN]
    [new] = await rotated.encode([PLAIN])
    assert new.metadata["fairlane-key-id"] == b"k2"
    with pytest.raises(PayloadKeyError, match="'k2', which is not configured"):
        await AesGcmCodec(PayloadKeys(current="k1", keys={"k1": K1})).decode([new])


async def test_a_tampered_payload_is_refused() -> None:
    codec = AesGcmCodec(PayloadKeys(current="k1", keys={"k1": K1}))
    [sealed] = await codec.encode([PLAIN])
    sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(InvalidTag):
        await codec.decode([sealed])


async def test_plaintext_from_before_encryption_passes_through() -> None:
    codec = AesGcmCodec(PayloadKeys(current="k1", keys={"k1": K1}))
    assert await codec.decode([PLAIN]) == [PLAIN]


def test_bad_keys_are_refused_at_start() -> None:
    with pytest.raises(PayloadKeyError, match="32 bytes"):
        PayloadKeys(current="k1", keys={"k1": b"short"})
    with pytest.raises(PayloadKeyError, match="current payload key 'k9'"):
        PayloadKeys(current="k9", keys={"k1": K1})


async def test_the_key_file_is_made_once_private_and_shared(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, payload_keys=None)
    made = await asyncio.gather(*(asyncio.to_thread(payload_keys, settings) for _ in range(8)))
    assert (
        len(
            {
                json.dumps({k: base64.b64encode(v).decode() for k, v in m.keys.items()})
                for m in made
                if m
            }
        )
        == 1
    )
    mode = stat.S_IMODE(settings.resolved_payload_key_file.stat().st_mode)
    assert mode == 0o600


def test_settings_keys_win_over_the_file(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        payload_keys={"a": SecretStr(base64.b64encode(K1).decode())},
        payload_key_current="a",
    )
    keys = payload_keys(settings)
    assert keys is not None and keys.current == "a" and keys.keys["a"] == K1
    assert not settings.resolved_payload_key_file.exists()


async def test_an_incident_history_holds_no_plaintext_and_auditors_can_decode_it(
    dev_env: WorkflowEnvironment, router_service: RouterService, module_api: Api
) -> None:
    api = module_api
    await router_service.reset()
    secret_summary = f"summary-{uuid.uuid4().hex}"
    incident = incident_input(router_service, builtin_playbook("drift-rollback"))
    incident.summary = secret_summary
    queue = api.settings.task_queue
    handle = await start_incident(dev_env.client, incident, queue)
    await wait_for_phase(handle, "awaiting_signoff")

    # Read the history as someone with only the temporal CLI would: no codec.
    plain = await Client.connect(
        dev_env.client.service_client.config.target_host, data_converter=pydantic_data_converter
    )
    history = await plain.get_workflow_handle(incident.incident_id).fetch_history()
    raw = history.to_json()
    assert secret_summary not in raw
    # Plaintext only where Temporal itself must read it: search attributes (visibility)
    # and the SDK's own marker bookkeeping (a local activity's id, time, attempt).
    assert _plaintext_payloads(json.loads(raw)) <= {
        "events.upsertWorkflowSearchAttributesEventAttributes.searchAttributes.indexedFields",
        "events.markerRecordedEventAttributes.details.data",
        "events.markerRecordedEventAttributes.details.patch-data",
    }
    started = history.events[0].workflow_execution_started_event_attributes
    [sealed] = started.input.payloads
    assert sealed.metadata["encoding"] == ENCODING

    body = {"payloads": [json_format.MessageToDict(sealed)]}
    async with api.client() as client:
        decoded = await client.post("/v1/codec/decode", headers=api.headers("auditor"), json=body)
        refused = await client.post("/v1/codec/decode", headers=api.headers("legal1"), json=body)
        anonymous = await client.post("/v1/codec/decode", json=body)
        preflight = await client.options(
            "/v1/codec/decode",
            headers={
                "Origin": api.settings.temporal_ui_url,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
    assert decoded.status_code == 200, decoded.text
    [opened] = decoded.json()["payloads"]
    assert secret_summary in base64.b64decode(opened["data"]).decode()
    assert refused.status_code == 403 and anonymous.status_code == 401
    assert preflight.headers.get("access-control-allow-origin") == api.settings.temporal_ui_url
    await handle.terminate("test over")


def _plaintext_payloads(node: object, path: str = "") -> set[str]:
    """Where, by event attribute, the history holds payloads not sealed by Fairlane."""
    found: set[str] = set()
    if isinstance(node, dict):
        encoding = node.get("metadata", {}).get("encoding") if "metadata" in node else None
        if isinstance(encoding, str) and encoding != base64.b64encode(ENCODING).decode():
            found.add(".".join(path.split(".")[:4]))
        for key, value in node.items():
            if key != "metadata":
                found |= _plaintext_payloads(value, f"{path}.{key}".lstrip(".") if path else key)
    elif isinstance(node, list):
        for item in node:
            found |= _plaintext_payloads(item, path)
    return found

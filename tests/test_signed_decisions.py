"""Temporal cannot be used to go around the API: human decisions must carry its signature.

The attack: ``temporal workflow update execute --name decide_signoff`` with an invented
principal holding ``legal`` was accepted and resolved an incident with invented
approvers on the trail. Here the real ``temporal`` CLI sends forged decisions to an
incident the real API opened on the real dev server: each is refused with its reason,
the incident stays pending and nothing reaches the trail; the API's own decision is
taken.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.testing import WorkflowEnvironment

from contracts.decisions import (
    CANARY_CONTROL,
    SIGNOFF,
    DecisionKey,
    decision_refusal,
)
from contracts.incident import SignoffDecision
from incidents.decisions import DecisionSigner
from tests.fixtures.api import Api, served_api
from tests.fixtures.incidents import TEST_SIGNER
from tests.fixtures.services import RouterService

TEMPORAL = str(Path(sys.executable).parent / "temporal")
NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
KEY = TEST_SIGNER.key.model_copy(update={"max_age_s": 300})


def _decision(**changes: Any) -> SignoffDecision:
    fields: dict[str, Any] = {
        "principal": "lee.legal",
        "principal_roles": ["legal"],
        "role": "legal",
        "decision": "approve",
        "comment": "contained, as it should be",
    }
    return SignoffDecision.model_validate(fields | changes)


def _refusal(decision: SignoffDecision, key: DecisionKey | None = KEY, **kw: Any) -> str | None:
    return decision_refusal(
        kw.get("kind", SIGNOFF),
        decision,
        key,
        kw.get("incident", "inc-a"),
        kw.get("step", "signoff"),
        kw.get("now", NOW),
        kw.get("delivered", ()),
    )


def _signed(decision: SignoffDecision, **kw: Any) -> SignoffDecision:
    return TEST_SIGNER.sign(
        SIGNOFF,
        decision,
        kw.get("incident", "inc-a"),
        kw.get("step", "signoff"),
        kw.get("at", NOW - timedelta(seconds=5)),
    )


def test_a_decision_the_api_signed_for_this_incident_and_step_is_taken() -> None:
    assert _refusal(_signed(_decision())) is None


@pytest.mark.parametrize(
    ("decision", "kw", "reason"),
    [
        (_decision(), {}, "unsigned decision refused"),
        (_signed(_decision()), {"key": None}, "opened without a decision key"),
        # an invented principal, or roles, or role, or verdict under a real signature
        (_signed(_decision()).model_copy(update={"principal": "mallory"}), {}, "does not verify"),
        (
            _signed(_decision(principal_roles=["communications"])).model_copy(
                update={"principal_roles": ["communications", "legal"]}
            ),
            {},
            "does not verify",
        ),
        (_signed(_decision()).model_copy(update={"decision": "reject"}), {}, "does not verify"),
        (_signed(_decision()).model_copy(update={"comment": "edited"}), {}, "does not verify"),
        (_signed(_decision(), incident="inc-b"), {}, "signed for incident inc-b"),
        (_signed(_decision(), step="other"), {}, "signed for step 'other'"),
        (_signed(_decision(), at=NOW - timedelta(minutes=6)), {}, "stale decision"),
        (_signed(_decision(), at=NOW + timedelta(minutes=5)), {}, "in the future"),
        (_signed(_decision()), {"kind": CANARY_CONTROL}, "does not verify"),
    ],
    ids=[
        "unsigned",
        "no-key",
        "principal",
        "roles",
        "verdict",
        "comment",
        "other-incident",
        "other-step",
        "stale",
        "future",
        "other-kind",
    ],
)
def test_forged_altered_misdirected_or_stale_decisions_are_refused(
    decision: SignoffDecision, kw: dict[str, Any], reason: str
) -> None:
    refusal = _refusal(decision, **kw)
    assert refusal is not None and reason in refusal, refusal


def test_a_decision_signed_by_another_key_or_replayed_is_refused() -> None:
    other = DecisionSigner(Ed25519PrivateKey.generate(), 300)
    forged = other.sign(SIGNOFF, _decision(), "inc-a", "signoff", NOW)
    assert "this incident trusts" in (_refusal(forged) or "")
    # the right key id on someone else's signature
    assert forged.proof is not None
    relabelled = forged.model_copy(
        update={"proof": forged.proof.model_copy(update={"key_id": KEY.key_id})}
    )
    assert "does not verify" in (_refusal(relabelled) or "")
    good = _signed(_decision())
    assert good.proof is not None
    assert "already delivered" in (_refusal(good, delivered={good.proof.signature}) or "")


# ---- the real CLI against the real dev server and API ----------------------------------


@pytest.fixture(scope="module")
def api_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signed-api")


@pytest_asyncio.fixture(scope="module")
async def api(
    dev_env: WorkflowEnvironment, router_service: RouterService, api_data: Path
) -> AsyncIterator[Api]:
    async with served_api(dev_env, router_service, api_data) as service:
        yield service


async def _temporal_update(
    dev_env: WorkflowEnvironment, incident: str, name: str, body: dict[str, Any]
) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        TEMPORAL,
        "workflow",
        "update",
        "execute",
        "--name",
        name,
        "--workflow-id",
        incident,
        "--input",
        json.dumps(body),
        "--address",
        dev_env.client.service_client.config.target_host,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, (out + err).decode()


async def _state(api: Api, incident: str) -> dict[str, Any]:
    async with api.client() as client:
        response = await client.get(f"/v1/incidents/{incident}", headers=api.headers("auditor"))
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state


async def test_forged_decisions_sent_with_the_temporal_cli_are_refused(
    api: Api, dev_env: WorkflowEnvironment, router_service: RouterService
) -> None:
    await router_service.reset()
    async with api.client() as client:
        opened = await client.post(
            "/v1/incidents",
            headers=api.headers("ic"),
            json={"model": "credit-limit", "summary": "forgery drill"},
        )
        assert opened.status_code == 202, opened.text
    incident = opened.json()["incident_id"]
    for _ in range(400):
        state = await _state(api, incident)
        if state["phase"] == "awaiting_signoff":
            break
        await asyncio.sleep(0.05)
    assert state["phase"] == "awaiting_signoff", state
    step = state["signoff"]["step"]

    invented = {
        "principal": "mallory@example.com",
        "principal_roles": ["legal", "compliance"],
        "role": "legal",
        "decision": "approve",
        "comment": "looks fine to me",
    }
    code, output = await _temporal_update(dev_env, incident, "decide_signoff", invented)
    assert code != 0 and "unsigned decision refused" in output, output

    # A genuine signature, lifted onto an invented principal.
    genuine = TEST_SIGNER.sign(SIGNOFF, _decision(), incident, step)
    lifted = genuine.model_dump(mode="json") | {"principal": "mallory@example.com"}
    code, output = await _temporal_update(dev_env, incident, "decide_signoff", lifted)
    assert code != 0 and "does not verify" in output, output

    # A decision the API signed for another incident, replayed here.
    elsewhere = TEST_SIGNER.sign(SIGNOFF, _decision(), "inc-20261123-other", step)
    code, output = await _temporal_update(
        dev_env, incident, "decide_signoff", elsewhere.model_dump(mode="json")
    )
    assert code != 0 and "signed for incident inc-20261123-other" in output, output

    # A stale one (the API-opened incident allows the default 300 s).
    stale = TEST_SIGNER.sign(
        SIGNOFF, _decision(), incident, step, datetime.now(UTC) - timedelta(minutes=10)
    )
    code, output = await _temporal_update(
        dev_env, incident, "decide_signoff", stale.model_dump(mode="json")
    )
    assert code != 0 and "stale decision" in output, output

    # Canary controls and stand-downs go the same way.
    for name, body in (
        ("control_canary", {"principal": "m", "principal_roles": ["incident_commander"]}),
        ("stand_down_containment", {"principal": "m", "principal_roles": ["incident_commander"]}),
    ):
        body = body | {"reason": "forged"} | ({"action": "abort"} if "canary" in name else {})
        code, output = await _temporal_update(dev_env, incident, name, body)
        assert code != 0 and "unsigned decision refused" in output, output

    state = await _state(api, incident)
    assert state["phase"] == "awaiting_signoff"
    assert all(role["votes"] == [] for role in state["signoff"]["roles"])
    kinds = [r.kind for r in api.trail.records() if r.incident_id == incident]
    assert "signoff.decided" not in kinds and "containment.stood_down" not in kinds
    assert not any(k.startswith("canary.") for k in kinds)

    # Through the API, the same decision is signed and taken; the trail keeps the key id.
    async with api.client() as client:
        for who, role in (("legal1", "legal"), ("compliance1", "compliance")):
            ok = await client.post(
                f"/v1/incidents/{incident}/signoffs",
                headers=api.headers(who),
                json={"role": role, "decision": "approve", "comment": "agreed"},
            )
            assert ok.status_code == 200, ok.text
    decided = [
        r for r in api.trail.records() if r.incident_id == incident and r.kind == "signoff.decided"
    ]
    assert [r.actor for r in decided] == ["legal1", "compliance1"]
    assert all(TEST_SIGNER.key.key_id in r.detail for r in decided)

    # Replaying the API's own accepted decision through the CLI changes nothing either.
    replay = TEST_SIGNER.sign(SIGNOFF, _decision(principal="legal1"), incident, step)
    code, output = await _temporal_update(
        dev_env, incident, "decide_signoff", replay.model_dump(mode="json")
    )
    assert code != 0, output

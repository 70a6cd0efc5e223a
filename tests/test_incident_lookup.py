"""404 or 409: an incident Temporal does not know, or one whose workflow has closed.

Temporal answers NOT_FOUND to both, with server text that varies between versions;
the API asks the workflow's own status instead (``refuse_missing_or_closed``). Unit
cases pin the rule on the status code, whatever the message says; the served API
shows it end to end on a closed (terminated) incident and on an unknown one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import HTTPException
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.incidents import refuse_missing_or_closed
from tests.fixtures.api import Api


@dataclass
class _Described:
    status: WorkflowExecutionStatus


class _Handle:
    """A workflow handle whose ``describe`` answers as told, counting the calls."""

    def __init__(self, answer: WorkflowExecutionStatus | RPCError) -> None:
        self.id = "inc-20261203-abcd"
        self._answer = answer
        self.described = 0

    async def describe(self) -> _Described:
        self.described += 1
        if isinstance(self._answer, RPCError):
            raise self._answer
        return _Described(self._answer)


def _not_found(message: str) -> RPCError:
    return RPCError(message, RPCStatusCode.NOT_FOUND, b"")


async def _refusal(handle: _Handle, error: RPCError) -> HTTPException | None:
    try:
        await refuse_missing_or_closed(handle, error)  # type: ignore[arg-type]
    except HTTPException as refused:
        return refused
    return None


@pytest.mark.parametrize(
    "status", [WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.TERMINATED]
)
async def test_a_closed_workflow_is_409_whatever_the_message_says(
    status: WorkflowExecutionStatus,
) -> None:
    refused = await _refusal(_Handle(status), _not_found("no such thing"))
    assert refused is not None and refused.status_code == 409
    assert refused.detail == "incident inc-20261203-abcd is closed"


async def test_an_unknown_workflow_is_404_even_if_the_message_says_completed() -> None:
    handle = _Handle(_not_found("workflow not found"))
    refused = await _refusal(handle, _not_found("workflow execution already completed"))
    assert refused is not None and refused.status_code == 404
    assert refused.detail == "no incident 'inc-20261203-abcd'"


async def test_other_errors_are_left_to_the_caller() -> None:
    unavailable = RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
    handle = _Handle(WorkflowExecutionStatus.COMPLETED)
    assert await _refusal(handle, unavailable) is None
    assert handle.described == 0
    running = _Handle(WorkflowExecutionStatus.RUNNING)
    assert await _refusal(running, _not_found("gone")) is None
    failing = _Handle(RPCError("down", RPCStatusCode.UNAVAILABLE, b""))
    with pytest.raises(RPCError, match="down"):
        await refuse_missing_or_closed(failing, _not_found("gone"))  # type: ignore[arg-type]


async def _open_and_wait(api: Api) -> str:
    async with api.client() as client:
        opened = await client.post(
            "/v1/incidents",
            headers=api.headers("ic"),
            json={"model": "credit-limit", "summary": "parity breach"},
        )
        assert opened.status_code == 202, opened.text
        incident: str = opened.json()["incident_id"]
        for _ in range(400):
            shown = await client.get(f"/v1/incidents/{incident}", headers=api.headers("auditor"))
            if shown.status_code == 200 and shown.json()["phase"] == "awaiting_signoff":
                return incident
            await asyncio.sleep(0.05)
    raise AssertionError(f"incident {incident} never asked for sign-off")


def _decisions(incident: str) -> list[tuple[str, str, dict[str, Any]]]:
    base = f"/v1/incidents/{incident}"
    return [
        ("legal1", f"{base}/signoffs", {"role": "legal", "decision": "approve"}),
        ("ic", f"{base}/canary/pause", {"reason": "look"}),
        ("ic", f"{base}/containment/stand-down", {"reason": "look"}),
    ]


async def test_decisions_on_a_closed_incident_are_409_and_on_an_unknown_one_404(
    dev_env: WorkflowEnvironment, module_api: Api
) -> None:
    api = module_api
    incident = await _open_and_wait(api)
    await dev_env.client.get_workflow_handle(incident).terminate("closed by the test")
    async with api.client() as client:
        for who, path, body in _decisions(incident):
            closed = await client.post(path, headers=api.headers(who), json=body)
            assert closed.status_code == 409, (path, closed.text)
            assert closed.json()["detail"] == f"incident {incident} is closed"
        shown = await client.get(f"/v1/incidents/{incident}", headers=api.headers("auditor"))
        assert shown.status_code == 200  # a closed incident is still readable

        unknown = "inc-20261203-nosuch"
        for who, path, body in _decisions(unknown):
            missing = await client.post(path, headers=api.headers(who), json=body)
            assert missing.status_code == 404, (path, missing.text)
            assert missing.json()["detail"] == f"no incident {unknown!r}"
        for path in (f"/v1/incidents/{unknown}", f"/v1/incidents/{unknown}/report"):
            missing = await client.get(path, headers=api.headers("auditor"))
            assert missing.status_code == 404, (path, missing.text)

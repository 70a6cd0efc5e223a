"""Replays recorded incident and watch histories against today's workflow code.

A change to workflows/ that would break incidents already running (non-determinism)
fails here; make it with ``workflow.patched`` instead, then re-record.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from config import Settings
from stack.codec import data_converter
from tests.fixtures.histories import HISTORIES
from workflows.incident import IncidentWorkflow
from workflows.watch import ModelWatchWorkflow

RECORDED = sorted(HISTORIES.glob("*.json"))


def test_histories_are_recorded() -> None:
    assert len(RECORDED) >= 3, "tests/histories lost its recordings"


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240
    replayer = Replayer(
        workflows=[IncidentWorkflow, ModelWatchWorkflow], data_converter=data_converter(Settings())
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None

"""Step kinds: one module each under workflows/steps/, none left to fall through.

The exhaustive ``match`` in ``workflows/steps/dispatch.py`` is checked by mypy; these
tests hold the runtime side: every playbook kind has its module with a ``run``, and a
step of a kind nobody handles is refused instead of being run as another kind.
"""

from __future__ import annotations

import importlib
import inspect
from types import SimpleNamespace
from typing import cast

import pytest

from playbooks.steps import STEP_KINDS, Step
from workflows.steps.base import StepContext
from workflows.steps.dispatch import run_step


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_every_step_kind_has_its_own_module(kind: str) -> None:
    module = importlib.import_module(f"workflows.steps.{kind}")
    run = getattr(module, "run", None)
    assert run is not None and inspect.iscoroutinefunction(run), kind
    assert list(inspect.signature(run).parameters) == ["ctx", "step"], kind


async def test_a_step_nobody_handles_is_refused_not_run_as_another_kind() -> None:
    stranger = cast(Step, SimpleNamespace(kind="stranger", name="x"))
    with pytest.raises(AssertionError):
        await run_step(cast(StepContext, None), stranger)

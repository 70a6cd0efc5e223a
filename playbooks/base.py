"""Kept so that ``from playbooks.base import ...`` goes on working.

The types live in :mod:`contracts.playbook.base`: a playbook is workflow input, and contracts
import nothing else of Fairlane.
"""

from contracts.playbook.base import (
    KEEP_TRYING_EVERY,
    FailureAction,
    OnFailure,
    RetrySpec,
    StepBase,
    Strict,
    TimeoutSpec,
    long_computation,
)

__all__ = [
    "KEEP_TRYING_EVERY",
    "FailureAction",
    "OnFailure",
    "RetrySpec",
    "StepBase",
    "Strict",
    "TimeoutSpec",
    "long_computation",
]

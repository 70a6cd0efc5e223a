"""Temporal activity options from a playbook step's retry policy and timeouts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from playbooks.base import RetrySpec, TimeoutSpec
    from playbooks.steps import Step

DEFAULT_TIMEOUTS = TimeoutSpec()


def activity_options(retry: RetrySpec, timeouts: TimeoutSpec = DEFAULT_TIMEOUTS) -> dict[str, Any]:
    return {
        "start_to_close_timeout": timeouts.start_to_close,
        "schedule_to_close_timeout": timeouts.schedule_to_close,
        "heartbeat_timeout": timeouts.heartbeat,
        "retry_policy": RetryPolicy(
            initial_interval=retry.initial_interval,
            backoff_coefficient=retry.backoff,
            maximum_interval=retry.maximum_interval,
            maximum_attempts=retry.maximum_attempts,
            non_retryable_error_types=retry.non_retryable or None,
        ),
    }


def step_options(step: Step) -> dict[str, Any]:
    return activity_options(step.retry, step.timeouts)


def without_heartbeat(options: dict[str, Any], start_to_close: timedelta) -> dict[str, Any]:
    """For work that reports back through asynchronous completion, not heartbeats."""
    return {**options, "heartbeat_timeout": None, "start_to_close_timeout": start_to_close}

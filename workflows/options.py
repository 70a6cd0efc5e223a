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
NOTIFY_TIMEOUTS = TimeoutSpec(start_to_close=timedelta(seconds=10))
"""A notification is one short HTTP call: a worker lost mid-send is noticed in seconds."""


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


def notify_options(retry: RetrySpec | None = None) -> dict[str, Any]:
    """Options for a notification sent on behalf of a step that is not itself a notify step."""
    return activity_options(retry or RetrySpec(), NOTIFY_TIMEOUTS)


def step_options(step: Step) -> dict[str, Any]:
    return activity_options(step.retry, step.timeouts)


def without_heartbeat(options: dict[str, Any], start_to_close: timedelta) -> dict[str, Any]:
    """For work that reports back through asynchronous completion, not heartbeats."""
    return {**options, "heartbeat_timeout": None, "start_to_close_timeout": start_to_close}


def persistent(options: dict[str, Any], keep_trying_every: timedelta) -> dict[str, Any]:
    """``options`` with no attempt limit and no overall deadline, waiting at most
    ``keep_trying_every`` between attempts: for work that must not give up (containment).
    A non-retryable failure still ends the activity; the caller decides what follows."""
    retry: RetryPolicy = options["retry_policy"]
    return {
        **options,
        "schedule_to_close_timeout": None,
        "retry_policy": RetryPolicy(
            initial_interval=min(retry.initial_interval, keep_trying_every),
            backoff_coefficient=retry.backoff_coefficient,
            maximum_interval=keep_trying_every,
            maximum_attempts=0,
            non_retryable_error_types=retry.non_retryable_error_types,
        ),
    }

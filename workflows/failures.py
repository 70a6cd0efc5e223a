"""Failure text for the step detail, the incident outcome and the trail."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError


def failure_text(error: ActivityError | ApplicationError) -> str:
    """What the activity said went wrong, with its type: not the wrapper around it.

    The first application failure under the wrapper is the one the activity raised,
    typed and worded for people ("RouterUnreachable: router unreachable: …"); what it
    was raised from (an httpx error, say) is detail beneath it. Without one (a timeout,
    a cancellation), the innermost cause.
    """
    if isinstance(error, ApplicationError):  # a local activity's, unwrapped
        return _typed(error)
    cause: BaseException = error
    while cause.__cause__ is not None and cause.__cause__ is not cause:
        cause = cause.__cause__
        if isinstance(cause, ApplicationError):
            return _typed(cause)
    return f"{type(cause).__name__}: {cause}"


def _typed(error: ApplicationError) -> str:
    return f"{error.type}: {error.message}" if error.type else error.message

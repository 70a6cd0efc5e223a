"""Which of Fairlane's task queues a worker process polls (``fairlane worker --queue``)."""

from __future__ import annotations

from enum import StrEnum


class Queues(StrEnum):
    ALL = "all"
    """Both, in one process: the default, and what each docker-compose replica runs."""
    MAIN = "main"
    """``task_queue``: incidents, canary steps, every activity (and watches of old runs)."""
    CONTAINMENT = "containment"
    """``resolved_containment_task_queue``: model watches and the activities they schedule."""

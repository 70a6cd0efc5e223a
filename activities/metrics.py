"""The worker's own Prometheus counters, recorded through Temporal's metric meter.

A worker started with ``FAIRLANE_WORKER_METRICS_ADDRESS`` serves the Temporal SDK's
metrics (``temporal_*``: task slots, poll and schedule-to-start latencies, activity and
workflow task outcomes...) at ``http://<address>/metrics`` (see
:func:`stack.temporal.worker_runtime`). Fairlane's counters are recorded on the same
meter, so one scrape target per worker carries both, and without the setting the meter
is a no-op and counting costs nothing:

* ``fairlane_activity_attempts_total{activity_type, outcome}``: every activity attempt,
  ``started`` then ``completed`` or ``failed`` (cancellations included), as the audit
  interceptor records them;
* ``fairlane_incident_phase_transitions_total{phase}``: incidents entering ``phase``,
  counted when the ``phase.changed`` audit record is first written.

The meter adds ``namespace``, ``task_queue`` and ``activity_type`` of the running
activity, and ``service_name``. Labels never carry tokens, ids or free text.
"""

from __future__ import annotations

from typing import Literal

from temporalio import activity
from temporalio.common import MetricMeter

ACTIVITY_ATTEMPTS = "fairlane_activity_attempts_total"
PHASE_TRANSITIONS = "fairlane_incident_phase_transitions_total"

AttemptOutcome = Literal["started", "completed", "failed"]


def _meter() -> MetricMeter:
    """The running activity's meter (no-op outside one, or in a process-pool activity)."""
    try:
        return activity.metric_meter()
    except RuntimeError:
        return MetricMeter.noop


def count_attempt(outcome: AttemptOutcome) -> None:
    """Count one activity attempt reaching ``outcome``; call it inside the activity."""
    _meter().create_counter(
        ACTIVITY_ATTEMPTS, "activity attempts by outcome (started, completed, failed)"
    ).add(1, {"outcome": outcome})


def count_phase_transition(phase: str) -> None:
    """Count an incident entering ``phase``; call it inside the activity that recorded it."""
    _meter().create_counter(PHASE_TRANSITIONS, "incidents entering each phase").add(
        1, {"phase": phase}
    )

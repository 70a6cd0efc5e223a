"""Long computations in a thread while the activity keeps heartbeating from the event loop.

The audits are CPU-bound library calls (scikit-learn, shap). They run in a worker
thread so the event loop stays free to heartbeat: Temporal then knows the attempt is
alive, and learns of a crashed worker within the heartbeat timeout instead of at the
end of a 30-minute start-to-close timeout. The computation reports its phase through
a callback; each heartbeat carries the latest one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")
Progress = Callable[[str], None]


async def run_with_heartbeat(compute: Callable[[Progress], T], every_s: float = 5.0) -> T:
    phase = ["starting"]

    def progress(text: str) -> None:
        phase[0] = text

    task = asyncio.ensure_future(asyncio.to_thread(compute, progress))
    activity.heartbeat(phase[0])
    while True:
        done, _ = await asyncio.wait({task}, timeout=every_s)
        if done:
            return task.result()
        activity.heartbeat(phase[0])

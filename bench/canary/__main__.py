"""``python -m bench.canary``: both sections, then the figures' line."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import bench.canary
from bench.canary.models import CANDIDATE, prepare_models
from bench.canary.rollback import ANALYSIS_INTERVAL_S, rollback_section
from bench.decisions import look_figures
from config.logging import configure_logging


async def run(args: argparse.Namespace, scratch: Path) -> None:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load} at the start")
    start = time.perf_counter()
    models = prepare_models(scratch)
    print(f"candidate {CANDIDATE}: {models.remediation} ({time.perf_counter() - start:.1f}s)")

    rollbacks, flip_s = await rollback_section(models, scratch, args.runs)
    detect = statistics.median(r.detect_to_rollback_s for r in rollbacks)
    act = statistics.median(r.act_s for r in rollbacks)
    print(
        f"detect_to_rollback median {detect:.2f}s over {len(rollbacks)} runs; analysis "
        f"interval {ANALYSIS_INTERVAL_S:g}s, ratio {detect / ANALYSIS_INTERVAL_S:.2f}; "
        f"median looks to the breach {statistics.median(r.looks_to_breach for r in rollbacks):g}"
    )
    print(
        f"act (breaching look to route shown) median {act:.2f}s, router flip "
        f"{flip_s * 1000:.1f}ms, ratio {act / flip_s:.0f}"
    )

    # One canary look over a million logged decisions: from the per-minute rollups the
    # gateway and the ingestion route write, beside the raw GROUP BY (bench/decisions.py).
    look = await look_figures(f"sqlite:///{scratch / 'look.db'}", decisions=args.decisions)
    print(
        f"one look over {args.decisions} decisions: {look.look_1m_s:.3f}s from rollups, "
        f"{look.raw_look_1m_s:.3f}s raw, ratio {look.raw_look_1m_s / look.look_1m_s:.0f}"
    )
    print(f"canary detect_to_rollback_s={detect:.2f} analysis_1m_decisions_s={look.look_1m_s:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(bench.canary.__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory(prefix="fairlane-bench-") as scratch:
        asyncio.run(run(args, Path(scratch)))


if __name__ == "__main__":
    main()

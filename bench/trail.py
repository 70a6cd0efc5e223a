"""The audit trail: what signing checkpoints costs an append, and verifying 100,000 records.

Two trails side by side in one scratch folder, each on its own SQLite file through the
product's ``AuditTrail``: one signed as a deployment opens it (``open_trail``:
Ed25519 key file, checkpoint log, default policy: every phase change and sign-off,
every 1,000 records, the first append after 60 s), one unsigned. Appends go one event
per call, as the worker's activities write them, in alternating rounds so both see
the same machine; one event in 20 is a ``phase.changed`` or ``signoff.decided``, so
the signed trail writes (and fsyncs) a checkpoint for each of those.

Then a signed trail of 100,000 records (written in batches, as a watch's alert storm
writes them) is verified: every hash recomputed and every checkpoint's signature and
record checked, from one snapshot.

    .venv/bin/python -m bench.trail [--appends 2000] [--records 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from audit.configure import open_trail
from audit.trail import AuditTrail
from config import Settings
from config.logging import configure_logging
from contracts.audit import AuditEvent
from store.db import create_tables, make_engine

ROUNDS = 10
BATCH = 1000


def event(n: int, prefix: str) -> AuditEvent:
    kind = "activity.completed"
    if n % 20 == 0:
        kind = "phase.changed" if n % 40 == 0 else "signoff.decided"
    return AuditEvent(
        event_id=f"{prefix}-{n}",
        incident_id=f"inc-bench-{n // 50}",
        kind=kind,
        actor="worker:bench",
        step="route",
        attempt=1,
        inputs_digest="sha256:" + "1" * 64,
        outputs_digest="sha256:" + "2" * 64,
        detail={"n": n, "route": "fallback", "why": "contain harm"},
    )


def trail_in(folder: Path, name: str, signed: bool) -> AuditTrail:
    settings = Settings(data_dir=folder / name)
    engine = make_engine(settings.resolved_database_url)
    create_tables(engine)
    return open_trail(engine, settings) if signed else AuditTrail(engine)


def append_rate(signed: AuditTrail, unsigned: AuditTrail, appends: int) -> tuple[float, float]:
    """Appends per second for each trail, measured in alternating rounds."""
    spent = {True: 0.0, False: 0.0}
    per_round = appends // ROUNDS
    for round_ in range(ROUNDS):
        for is_signed, trail in ((True, signed), (False, unsigned)):
            start = time.perf_counter()
            for i in range(per_round):
                trail.append(event(round_ * per_round + i + 1, "ev"))
            spent[is_signed] += time.perf_counter() - start
    done = per_round * ROUNDS
    return done / spent[True], done / spent[False]


def verify_time(folder: Path, records: int) -> tuple[float, int]:
    trail = trail_in(folder, "large", signed=True)
    for start in range(1, records + 1, BATCH):
        last = min(start + BATCH, records + 1)
        trail.append_many([event(n, "big") for n in range(start, last)])
    started = time.perf_counter()
    report = trail.verify()
    elapsed = time.perf_counter() - started
    if not report.ok or report.records_checked != records:
        raise SystemExit(f"the benchmark's own trail does not verify: {report.problems[:3]}")
    assert report.checkpoints is not None
    return elapsed, report.checkpoints.checkpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory(prefix="fairlane-bench-trail-") as scratch:
        folder = Path(scratch)
        signed, unsigned = trail_in(folder, "signed", True), trail_in(folder, "unsigned", False)
        signed_rate, unsigned_rate = append_rate(signed, unsigned, args.appends)
        assert signed.verify().ok and unsigned.verify().ok
        checkpoints = signed.verify().checkpoints
        print(
            f"{args.appends} appends each, one event per call, 1 in 20 a phase change or "
            f"sign-off: signed {signed_rate:.0f}/s ({checkpoints.checkpoints if checkpoints else 0}"
            f" checkpoints), unsigned {unsigned_rate:.0f}/s "
            f"(signing costs {100 * (1 - signed_rate / unsigned_rate):.1f}%)"
        )
        verify_s, large_checkpoints = verify_time(folder, args.records)
        print(
            f"verify {args.records} records against {large_checkpoints} checkpoints: "
            f"{verify_s:.2f}s ({args.records / verify_s:.0f} records/s)"
        )
    scale = 100_000 / args.records
    print(
        f"trail append_per_s={signed_rate:.0f} unsigned_append_per_s={unsigned_rate:.0f} "
        f"verify_100k_s={verify_s * scale:.2f}"
    )


if __name__ == "__main__":
    main()

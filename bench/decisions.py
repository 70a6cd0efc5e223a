"""Decision ingestion and window looks: reported decisions per second, and one look over 1M.

* ``ingest_decisions_per_s``: decisions reported to ``POST /v1/models/{id}/decisions``
  of the embedded stack's API, over real HTTP, in batches of 1,000 (two clients in
  parallel), each batch checked against the manifest, logged and rolled up in one
  transaction. Bodies are serialised before the clock starts; the clients share the
  machine's cores with the API, Temporal and the workers.
* ``look_1m_s``: one window over 1,000,000 logged decisions, read from the per-minute
  rollups by the provider the live analysis uses for reported decisions
  (:class:`metrics.ingested.IngestedDecisionsProvider`), beside ``raw_look_1m_s``: the
  same cells by a ``GROUP BY`` over the decisions table, in the same run and database.
  The 1M decisions are spread over ``span_hours`` (default 6 h, ~2,800 a minute) and
  bulk-loaded through :func:`decisions.store.append`; a look reads cells x minutes rows,
  so the rollups gain most where a minute holds many decisions per cell.

Run alone: ``python -m bench.decisions`` starts the embedded stack in a scratch
directory and prints ``decisions ingest_decisions_per_s=… look_1m_s=… raw_look_1m_s=…``.
``bench/gateway.py`` calls :func:`ingest_decisions_per_s` and :func:`look_figures` on
the stack it started.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlmodel import Session

from api.tokens import Role, issue_token
from bench.cpu import tree_cpu_seconds
from config import Settings
from config.logging import configure_logging
from config.targets import GATEWAY
from contracts.model import (
    Bin,
    DecisionSource,
    Feature,
    ModelManifest,
    ModelVersion,
    Outcomes,
    StratumBins,
)
from contracts.routing import Serving
from contracts.targets import RouterRef
from decisions.records import DecisionRecord
from decisions.reports import DecisionBatch, ReportedDecision
from decisions.store import append
from decisions.tables import DECISIONS, ROLLUPS, create_decision_tables
from metrics.ingested import IngestedDecisionsProvider
from registry.service import ModelRegistry
from stack.loopback import settings_on_free_ports
from stack.supervisor import EmbeddedStack
from store.db import create_tables, make_engine

RACES = ("asian", "black", "hispanic", "white")
SEXES = ("f", "m")
BATCH = 1_000
LOOKED_AT = 1_000_000
_LOAD_CHUNK = 20_000


def bench_manifest(model_id: str) -> ModelManifest:
    """A hiring model whose service reports its decisions: 8 groups x 4 strata."""
    return ModelManifest(
        id=model_id,
        versions=[
            ModelVersion(version="v1", artifact=f"{model_id}-v1.skops"),
            ModelVersion(version="v2", artifact=f"{model_id}-v2.skops"),
        ],
        primary_version="v1",
        outcomes=Outcomes(decision="hired", amount="salary"),
        features=[
            Feature(name="years", type="numeric"),
            Feature(name="region", type="categorical"),
        ],
        protected_attributes=["race", "sex"],
        groups={"race": list(RACES), "sex": list(SEXES)},
        strata=["seniority", "region"],
        bins={
            "seniority": StratumBins(
                feature="years",
                bins=[Bin(label="junior", below=5), Bin(label="senior", at_least=5)],
            )
        },
        decisions=DecisionSource(kind="ingest"),
        router=RouterRef(target=GATEWAY),
    )


def reporting_model(settings: Settings, model_id: str) -> str:
    """Register an ingest model on the stack's database; a decision_reporter token for it."""
    engine = make_engine(settings.resolved_database_url)
    create_tables(engine)
    ModelRegistry(engine).register(bench_manifest(model_id), "bench")
    engine.dispose()
    return issue_token(settings.resolved_tokens_file, "bench-reporter", [Role.DECISION_REPORTER])


def _reported(rng: random.Random, decision_id: str, at: datetime) -> ReportedDecision:
    hired = rng.random() < 0.55
    return ReportedDecision(
        decision_id=decision_id,
        version="v2" if rng.random() < 0.25 else "v1",
        served_by=Serving.CANDIDATE if rng.random() < 0.25 else Serving.PRIMARY,
        at=at,
        values={
            "race": rng.choice(RACES),
            "sex": rng.choice(SEXES),
            "years": round(rng.uniform(0, 20), 1),
            "region": rng.choice(("north", "south")),
        },
        decision=hired,
        amount=round(rng.uniform(40_000, 120_000), 2) if hired else 0.0,
    )


def _bodies(batches: int, batch_size: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    bodies = []
    for b in range(batches):
        decisions = []
        for i in range(batch_size):
            reported = _reported(rng, f"ingest-{seed}-{b}-{i}", now)
            # the candidate answers as v2, the primary as v1
            version = "v2" if reported.served_by is Serving.CANDIDATE else "v1"
            decisions.append(reported.model_copy(update={"version": version}))
        bodies.append(DecisionBatch(decisions=decisions).model_dump_json().encode())
    return bodies


@dataclass(frozen=True)
class Ingested:
    per_s: float
    """decisions per second through the route, wall clock"""
    api_cpu_s_per_1000: float | None
    """CPU seconds the API (all its processes) spent per 1,000 decisions; None without /proc"""

    def line(self) -> str:
        """What a run prints beside its last line: the CPU figure, robust to neighbours."""
        if self.api_cpu_s_per_1000 is None:
            return "API CPU per 1,000 decisions: not measured (no /proc)"
        cpu_ms = self.api_cpu_s_per_1000 * 1000
        return (
            f"API CPU per 1,000 decisions: {cpu_ms:.0f} ms, i.e. "
            f"{1000 / self.api_cpu_s_per_1000:.0f} decisions per API core-second"
        )


async def ingest_decisions_per_s(
    api_url: str,
    token: str,
    model_id: str,
    *,
    batches: int = 40,
    batch_size: int = BATCH,
    clients: int = 2,
    seed: int = 1,
    api_pid: int | None = None,
) -> Ingested:
    """Decisions per second through the ingestion route (``batches`` x ``batch_size``),
    and the CPU the API process ``api_pid`` and its children spent on them."""
    bodies = _bodies(batches, batch_size, seed)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"/v1/models/{model_id}/decisions"

    async def report(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            answer = await client.post(url, content=body, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"a batch was refused ({answer.status_code}): {answer.text}")
            if answer.json()["written"] != batch_size:
                raise RuntimeError(f"a batch wrote less than it sent: {answer.text}")

    async with httpx.AsyncClient(base_url=api_url, timeout=120) as client:
        warmup = _bodies(1, batch_size, seed + 1000)[0]
        (await client.post(url, content=warmup, headers=headers)).raise_for_status()
        cpu_before = tree_cpu_seconds(api_pid) if api_pid else None
        start = time.perf_counter()
        await asyncio.gather(*(report(client) for _ in range(clients)))
        elapsed = time.perf_counter() - start
        cpu_after = tree_cpu_seconds(api_pid) if api_pid else None
    decisions = batches * batch_size
    cpu = None
    if cpu_before is not None and cpu_after is not None:
        cpu = (cpu_after - cpu_before) / decisions * 1000
    return Ingested(decisions / elapsed, cpu)


@dataclass(frozen=True)
class LookFigures:
    look_1m_s: float
    raw_look_1m_s: float
    decisions: int
    rollup_rows: int
    load_s: float


def _load(database_url: str, model_id: str, decisions: int, span: timedelta, seed: int) -> float:
    """Bulk-load ``decisions`` over ``span`` through the store; the seconds it took."""
    manifest = bench_manifest(model_id)
    engine = make_engine(database_url)
    create_decision_tables(engine)
    rng = random.Random(seed)
    start_at = datetime(2026, 1, 5, tzinfo=UTC)
    step = span / decisions
    started = time.perf_counter()
    with Session(engine) as session:
        for first in range(0, decisions, _LOAD_CHUNK):
            chunk = []
            for i in range(first, min(decisions, first + _LOAD_CHUNK)):
                values = {
                    "race": rng.choice(RACES),
                    "sex": rng.choice(SEXES),
                    "years": rng.uniform(0, 20),
                    "region": rng.choice(("north", "south")),
                }
                candidate = rng.random() < 0.25
                hired = rng.random() < 0.55
                chunk.append(
                    DecisionRecord.model_construct(  # generated valid: not validated again
                        decision_id=f"look-{i}",
                        model=model_id,
                        version="v2" if candidate else "v1",
                        served_by=Serving.CANDIDATE if candidate else Serving.PRIMARY,
                        shadow=False,
                        at=start_at + step * i,
                        group=manifest.group_of(values),
                        stratum=manifest.stratum_of(values),
                        decision=hired,
                        amount=round(rng.uniform(40_000, 120_000), 2) if hired else 0.0,
                        rules_version=None,
                    )
                )
            append(session, chunk)
    engine.dispose()
    return time.perf_counter() - started


def _raw_look(database_url: str, model_id: str, since: datetime, until: datetime) -> int:
    """The same cells by a GROUP BY over every decision of the window; their total."""
    engine = make_engine(database_url)
    table = DECISIONS.c
    keys = (
        table.served_by,
        table.version,
        table.group,
        table.stratum,
        table.decision,
        table.outcome,
    )
    query = (
        select(*keys, func.count(), func.sum(table.amount), func.sum(table.amount * table.amount))
        .where(
            table.model == model_id,
            table.at >= since,
            table.at < until,
            table.shadow.is_(False),
        )
        .group_by(*keys)
    )
    with engine.connect() as connection:
        total = sum(int(row[6]) for row in connection.execute(query))
    engine.dispose()
    return total


async def look_figures(
    database_url: str,
    *,
    model_id: str = "bench-look",
    decisions: int = LOOKED_AT,
    span_hours: float = 6,
    seed: int = 5,
) -> LookFigures:
    """Load ``decisions`` into the database, then time one rollup look and one raw look."""
    span = timedelta(hours=span_hours)
    load_s = _load(database_url, model_id, decisions, span, seed)
    since = datetime(2026, 1, 5, tzinfo=UTC)
    until = since + span
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rollup_rows = connection.execute(
            select(func.count()).select_from(ROLLUPS).where(ROLLUPS.c.model == model_id)
        ).scalar_one()
    provider = IngestedDecisionsProvider(engine)
    started = time.perf_counter()
    window = await provider.window(RouterRef(target=GATEWAY), model_id, "v2", since, until)
    look_s = time.perf_counter() - started
    engine.dispose()
    started = time.perf_counter()
    raw_total = await asyncio.to_thread(_raw_look, database_url, model_id, since, until)
    raw_s = time.perf_counter() - started
    if window.decisions != decisions or raw_total != decisions:
        raise RuntimeError(
            f"looks disagree: rollups {window.decisions}, raw {raw_total}, loaded {decisions}"
        )
    return LookFigures(look_s, raw_s, decisions, rollup_rows, load_s)


async def run(
    data_dir: Path, batches: int, decisions: int, span_hours: float, api_workers: int
) -> None:
    settings = settings_on_free_ports(data_dir).model_copy(update={"api_workers": api_workers})
    model_id = "bench-reported"
    token = reporting_model(settings, model_id)
    stack = EmbeddedStack(settings)
    await stack.start()
    try:
        ingested = await ingest_decisions_per_s(
            stack.settings.api_url,
            token,
            model_id,
            batches=batches,
            api_pid=stack.process("api").pid,
        )
        looks = await look_figures(
            stack.settings.resolved_database_url, decisions=decisions, span_hours=span_hours
        )
    finally:
        stack.stop()
    print(f"ingestion through the API in {api_workers} process(es); {ingested.line()}")
    print(
        f"look over {looks.decisions} decisions in {span_hours:g} h: {looks.rollup_rows} rollup "
        f"rows (loaded in {looks.load_s:.1f}s, {looks.decisions / looks.load_s:.0f}/s in-process)"
    )
    print(
        f"decisions ingest_decisions_per_s={ingested.per_s:.0f} look_1m_s={looks.look_1m_s:.3f} "
        f"raw_look_1m_s={looks.raw_look_1m_s:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="batches of 1,000 to report")
    parser.add_argument("--decisions", type=int, default=LOOKED_AT, help="decisions to look over")
    parser.add_argument("--span-hours", type=float, default=6, help="the window they span")
    parser.add_argument("--api-workers", type=int, default=2, help="the API's processes")
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory(prefix="fairlane-bench-") as scratch:
        asyncio.run(
            run(Path(scratch), args.batches, args.decisions, args.span_hours, args.api_workers)
        )


if __name__ == "__main__":
    main()

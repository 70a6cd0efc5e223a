"""Gateway throughput: decisions per second through Fairlane's gateway, logging on.

On the embedded stack (Temporal, the API, the worker and the gateway as their own
processes, in a scratch folder on free ports), with the demo credit model deployed:

* ``single_rps``: one request per HTTP call (``POST /v1/models/{id}/decisions``), eight
  clients in parallel; each decision checked against the manifest, scored, logged and
  rolled up in its own transaction, and counted in the Prometheus counters;
* ``batch_decisions_per_s``: 1,000 requests per call (``.../decisions:batch``), two
  clients in parallel; one DataFrame scored, one transaction;
* beside them, in the same run, the same scoring without HTTP or logging, in this
  process: one row per call, and 1,000 rows per call (``scoring_*``);
* ``ingest_decisions_per_s``, ``look_1m_s`` and ``raw_look_1m_s`` from
  :mod:`bench.decisions` on the same stack.

Clients share the two cores with every service; the ratios hold on a noisy machine
better than the absolute figures do.

    .venv/bin/python -m bench.gateway [--seconds 20] [--batches 30] [--look-decisions 1000000]
        [--api-workers 2]

``--api-workers`` is the stack's ``api_workers`` (the API's processes): ingestion is
Python work in the API, so on two cores the API in two processes keeps both busy.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import pandas as pd

from analysis.scoring import load_scorer
from bench.decisions import ingest_decisions_per_s, look_figures, reporting_model
from config.logging import configure_logging
from demo.credit_model import FEATURES, prepare_demo_model
from demo.dataset import read_dataset
from demo.gateway import credit_request, deploy_credit
from router.client import RouterClient
from router.schemas import DecisionRequest
from stack.loopback import settings_on_free_ports
from stack.supervisor import EmbeddedStack
from store.artifacts import ArtifactStore

BATCH = 1_000


def requests_from(rows: pd.DataFrame, prefix: str) -> list[DecisionRequest]:
    return [
        credit_request(
            f"{prefix}-{i}",
            income=row.income,
            credit_history_years=row.credit_history_years,
            debt_ratio=row.debt_ratio,
            zip_code=row.zip_code,
            group=row.group,
        )
        for i, row in enumerate(rows.itertuples(index=False))
    ]


async def single_rps(
    gateway: RouterClient, model: str, requests: list[DecisionRequest], seconds: float
) -> float:
    """Requests answered per second, eight clients each sending one at a time."""
    done = [0]
    deadline = time.perf_counter() + seconds

    async def client(lane: int) -> None:
        n = lane
        while time.perf_counter() < deadline:
            await gateway.decide(model, requests[n % len(requests)])
            done[0] += 1
            n += 8

    started = time.perf_counter()
    await asyncio.gather(*(client(lane) for lane in range(8)))
    return done[0] / (time.perf_counter() - started)


async def batch_per_s(
    gateway: RouterClient, model: str, requests: list[DecisionRequest], batches: int
) -> float:
    """Decisions per second in batches of :data:`BATCH`, two clients in parallel."""
    chunks = [requests[i : i + BATCH] for i in range(0, len(requests) - BATCH + 1, BATCH)]

    async def client(lane: int) -> None:
        for n in range(lane, batches, 2):
            await gateway.decide_batch(model, chunks[n % len(chunks)])

    started = time.perf_counter()
    await asyncio.gather(client(0), client(1))
    return batches * BATCH / (time.perf_counter() - started)


def scoring_per_s(store: ArtifactStore, name: str, rows: pd.DataFrame) -> tuple[float, float]:
    """The same model scoring without HTTP or a log: one row per call, then 1,000."""
    scorer = load_scorer(store, name, store.digest(name))
    features = rows[list(FEATURES)].reset_index(drop=True)
    singles = [features.iloc[[i]] for i in range(min(2_000, len(features)))]
    started = time.perf_counter()
    for row in singles:
        scorer.score(row)
    single = len(singles) / (time.perf_counter() - started)
    batches = [features.iloc[i : i + BATCH] for i in range(0, len(features) - BATCH + 1, BATCH)]
    started = time.perf_counter()
    for batch in batches:
        scorer.score(batch)
    return single, len(batches) * BATCH / (time.perf_counter() - started)


async def run(
    data_dir: Path, seconds: float, batches: int, look_decisions: int, api_workers: int
) -> None:
    settings = settings_on_free_ports(data_dir).model_copy(update={"api_workers": api_workers})
    files = prepare_demo_model(data_dir, artifacts=settings.artifact_store())
    reporter = reporting_model(settings, "bench-reported")
    stack = EmbeddedStack(settings)
    await stack.start()
    settings = stack.settings
    assert settings.router_token is not None
    rows = read_dataset(files.validation_csv).head(10_000)
    try:
        async with RouterClient(
            settings.router_url, settings.router_token.get_secret_value(), timeout=120
        ) as gateway:
            model = files.model_id
            await deploy_credit(gateway, model, {files.version: files.artifact_name}, files.version)
            requests = requests_from(rows, "bench")
            await gateway.decide_batch(model, requests[:BATCH])  # warm: loaded, compiled
            single = await single_rps(gateway, model, requests, seconds)
            batch = await batch_per_s(gateway, model, requests, batches)
        scoring_single, scoring_batch = scoring_per_s(
            settings.artifact_store(), files.artifact_name, rows
        )
        ingest = await ingest_decisions_per_s(
            settings.api_url, reporter, "bench-reported", api_pid=stack.process("api").pid
        )
        looks = await look_figures(settings.resolved_database_url, decisions=look_decisions)
    finally:
        stack.stop()
    print(
        f"scoring without HTTP or logging: {scoring_single:.0f} decisions/s one row per call, "
        f"{scoring_batch:.0f}/s in batches of {BATCH}"
    )
    print(
        f"through the gateway with logging: {single:.0f}/s one per request "
        f"({single / scoring_single:.1%} of bare scoring), {batch:.0f}/s in batches of {BATCH} "
        f"({batch / scoring_batch:.1%})"
    )
    print(f"ingestion through the API in {api_workers} process(es), batches of {BATCH}")
    print(ingest.line())
    print(
        f"look over {looks.decisions} decisions: {looks.rollup_rows} rollup rows "
        f"(loaded in {looks.load_s:.1f}s)"
    )
    print(
        f"gateway single_rps={single:.0f} batch_decisions_per_s={batch:.0f} "
        f"ingest_decisions_per_s={ingest.per_s:.0f} look_1m_s={looks.look_1m_s:.3f} "
        f"raw_look_1m_s={looks.raw_look_1m_s:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--look-decisions", type=int, default=1_000_000)
    parser.add_argument("--api-workers", type=int, default=2, help="the API's processes")
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory(prefix="fairlane-bench-gateway-") as scratch:
        asyncio.run(
            run(Path(scratch), args.seconds, args.batches, args.look_decisions, args.api_workers)
        )


if __name__ == "__main__":
    main()

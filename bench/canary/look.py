"""One look over a million logged decisions, beside the naive ways of computing it.

See :mod:`bench.canary` for what is measured and against which baseline.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from bench.canary.models import CANDIDATE, TOKEN, Models, stack_settings
from config.targets import GATEWAY, TargetResolver
from contracts.metrics import DecisionCell, Side
from contracts.model import RouterRef
from contracts.routing import Serving
from demo.credit_model import (
    load_model,
    load_model_file,
)
from demo.dataset import generate_applicants
from fairness.live import LiveThresholds, analyse_window
from fairness.sequential import look_alpha
from metrics.decision_log import DecisionLogProvider
from router.client import RouterClient
from router.database import create_router_engine
from router.decision_log import DecisionRow
from router.fallback import RULES_VERSION, rules_decision
from router.outcomes import OutcomeRow
from router.summary import summarize_decisions
from stack.supervisor import EmbeddedStack
from store.artifacts import ArtifactStore


@dataclass(frozen=True)
class Scores:
    approved: npt.NDArray[np.bool_]
    limit: npt.NDArray[np.float64]
    shadow_approved: npt.NDArray[np.bool_]
    shadow_limit: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Window:
    model: str
    since: datetime
    until: datetime
    decisions: int


def scored(models: Models, applicants: pd.DataFrame, is_candidate: npt.NDArray[np.bool_]) -> Scores:
    """What really answered each applicant (candidate or rules) and what v1 said in shadow."""
    features = applicants[["income", "credit_history_years", "debt_ratio", "zip_code"]]
    approved = np.zeros(len(applicants), dtype=bool)
    limit = np.zeros(len(applicants))
    rows = np.flatnonzero(is_candidate)
    store = ArtifactStore(models.files.artifacts_dir)
    candidate = load_model(store, models.fair, models.fair_sha256).decide(features.iloc[rows])
    approved[rows], limit[rows] = zip(*candidate, strict=True)
    rows = np.flatnonzero(~is_candidate)
    rules = [
        rules_decision(income, years, debt)
        for income, years, debt in zip(
            features.income.to_numpy()[rows].tolist(),
            features.credit_history_years.to_numpy()[rows].tolist(),
            features.debt_ratio.to_numpy()[rows].tolist(),
            strict=True,
        )
    ]
    approved[rows], limit[rows] = zip(*rules, strict=True)
    shadow = load_model_file(models.files.artifact).decide(features)
    shadow_approved, shadow_limit = (np.asarray(values) for values in zip(*shadow, strict=True))
    return Scores(approved, limit, shadow_approved, shadow_limit)


def sqlite_timestamps(since: datetime, span: timedelta, count: int) -> list[str]:
    """``count`` evenly spaced instants, as SQLAlchemy stores a naive UTC DateTime in SQLite."""
    start = np.datetime64(since.astimezone(UTC).replace(tzinfo=None), "us")
    step = np.timedelta64(int(span / timedelta(microseconds=1)) // count, "us")
    stamps = np.datetime_as_string(start + np.arange(count) * step, unit="us")
    return list(np.char.replace(stamps, "T", " ").tolist())


_INSERT_DECISION = (
    "INSERT INTO router_decision (id, at, model, version, served_by, shadow, shadow_of, "
    'applicant_id, "group", income_band, credit_band, approved, credit_limit) '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_OUTCOME = "INSERT INTO router_outcome (decision_id, good, recorded_at) VALUES (?, ?, ?)"


def fill_decision_log(engine: Engine, models: Models, decisions: int, seed: int) -> Window:
    """``decisions`` live decisions of a canary at 10% over the fallback, v1 in shadow.

    Applicants come from the demo generator (its groups, income and credit bands); the
    candidate, the rules and the shadow v1 really score them. The day's decisions are
    evenly spaced; a tenth of them, the oldest, have an outcome. Rows go in through
    one DB-API ``executemany`` with the values as the router's column types store them
    (ORM objects or per-row bind processing would take minutes, not seconds).
    """
    applicants = generate_applicants(decisions, seed)
    rng = np.random.default_rng([seed, 1])  # not the generator's own stream
    is_candidate = rng.random(decisions) < 0.10
    scores = scored(models, applicants, is_candidate)
    since = datetime(2030, 1, 1, tzinfo=UTC)
    at = sqlite_timestamps(since, timedelta(days=1), decisions)
    model, primary = models.files.model_id, models.files.version
    live_version = np.where(is_candidate, CANDIDATE, RULES_VERSION).tolist()
    served_by = np.where(is_candidate, Serving.CANDIDATE.value, Serving.FALLBACK.value).tolist()
    columns = zip(
        at,
        live_version,
        served_by,
        applicants.applicant_id.tolist(),
        applicants.group.tolist(),
        applicants.income_band.tolist(),
        applicants.credit_band.tolist(),
        scores.approved.tolist(),
        scores.limit.tolist(),
        scores.shadow_approved.tolist(),
        scores.shadow_limit.tolist(),
        strict=True,
    )
    rows: list[tuple[Any, ...]] = []
    for i, (
        when,
        version,
        side,
        who,
        group,
        income,
        credit,
        ok,
        amount,
        v1_ok,
        v1_amount,
    ) in enumerate(columns):
        live_id = 2 * i + 1
        rows.append(
            (live_id, when, model, version, side, 0, None, who, group, income, credit, ok, amount)
        )
        rows.append(
            (
                live_id + 1,
                when,
                model,
                primary,
                side,
                1,
                live_id,
                who,
                group,
                income,
                credit,
                v1_ok,
                v1_amount,
            )
        )
    recorded = sqlite_timestamps(since + timedelta(days=2), timedelta(seconds=1), 1)[0]
    known = decisions // 10
    good = (rng.random(known) < 0.85).tolist()
    outcomes = [(2 * i + 1, good[i], recorded) for i in range(known)]
    with engine.begin() as connection:
        connection.exec_driver_sql(_INSERT_DECISION, rows)
        connection.exec_driver_sql(_INSERT_OUTCOME, outcomes)
    return Window(model=model, since=since, until=since + timedelta(days=1), decisions=decisions)


def cells_in_pandas(frame: pd.DataFrame) -> pd.DataFrame:
    """The hand-written reduction: canary arm, group, stratum, decision, outcome."""
    stable = frame["served_by"].isin([Serving.PRIMARY.value, Serving.FALLBACK.value])
    candidate = frame["version"] == CANDIDATE
    frame = frame.assign(
        side=np.where(stable, Side.STABLE.value, np.where(candidate, Side.CANDIDATE.value, "")),
        stratum=frame["income_band"] + "|" + frame["credit_band"],
        squares=frame["credit_limit"] ** 2,
    )
    frame = frame[frame["side"] != ""]
    keys = ["side", "group", "stratum", "approved"]
    if "outcome" in frame:
        keys.append("outcome")
    return (
        frame.groupby(keys, dropna=False)
        .agg(
            count=("credit_limit", "size"),
            amount_sum=("credit_limit", "sum"),
            amount_sumsq=("squares", "sum"),
        )
        .reset_index()
    )


def naive_sql(engine: Engine, window: Window) -> pd.DataFrame:
    """Baseline: the window's live rows, outcomes joined, straight into pandas."""
    query = (
        select(
            col(DecisionRow.served_by),
            col(DecisionRow.version),
            col(DecisionRow.group),
            col(DecisionRow.income_band),
            col(DecisionRow.credit_band),
            col(DecisionRow.approved),
            col(DecisionRow.credit_limit),
            col(OutcomeRow.good),
        )
        .outerjoin(OutcomeRow, col(OutcomeRow.decision_id) == col(DecisionRow.id))
        .where(
            col(DecisionRow.model) == window.model,
            col(DecisionRow.at) >= window.since,
            col(DecisionRow.at) < window.until,
            col(DecisionRow.shadow).is_(False),
        )
    )
    with engine.connect() as connection:
        frame = pd.read_sql_query(query, connection)
    return cells_in_pandas(frame.rename(columns={"good": "outcome"}))


async def naive_http(url: str, window: Window, page: int = 100_000) -> pd.DataFrame:
    """Baseline: every live decision of the window through ``GET /decisions``, paged.

    Plain JSON into pandas (no model objects on this side). Pages follow the time
    stamps, unique here. The API has no outcomes, so these cells lack that dimension:
    the baseline does less than the provider.
    """
    frames: list[pd.DataFrame] = []
    since = window.since
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as http:
        while True:
            params: dict[str, str | int] = {
                "since": since.isoformat(),
                "until": window.until.isoformat(),
                "limit": page,
            }
            response = await http.get(f"/v1/models/{window.model}/decisions", params=params)
            response.raise_for_status()
            frame = pd.DataFrame(response.json())
            if frame.empty:
                break
            frames.append(frame)
            if len(frame) < page:
                break
            since = datetime.fromisoformat(frame["at"].iloc[-1]) + timedelta(microseconds=1)
    return cells_in_pandas(pd.concat(frames, ignore_index=True))


class AnalysisBench(BaseModel):
    model_config = ConfigDict(frozen=True)

    decisions: int
    rows_in_log: int
    fill_s: float
    analysis_s: float  # median: provider window + analyse_window
    window_s: float  # median of the provider's part
    sql_only_s: float  # the provider's GROUP BY run in-process, once
    cells: int
    naive_sql_s: float
    naive_http_s: float | None
    headline: str


async def one_look(url: str, window: Window) -> tuple[float, float, int, str]:
    """(total seconds, window seconds, cells, headline) of one production look."""
    thresholds = LiveThresholds()  # the production defaults, every metric on
    alpha = look_alpha(0.05, 5, 168, 1)  # a 7-day bake, hourly looks, 5 ramp steps
    start = time.perf_counter()
    cells = await DecisionLogProvider(TargetResolver.single(url, TOKEN), timeout=600).window(
        RouterRef(target=GATEWAY), window.model, CANDIDATE, window.since, window.until
    )
    fetched = time.perf_counter()
    analysis = analyse_window(cells.cells, thresholds, alpha=alpha)
    done = time.perf_counter()
    assert cells.decisions == window.decisions, (cells.decisions, window.decisions)
    return done - start, fetched - start, len(cells.cells), analysis.headline


def check_same_cells(provider: list[DecisionCell], naive: pd.DataFrame) -> None:
    """The baselines must compute what the provider computed."""
    total = sum(cell.count for cell in provider)
    amounts = sum(cell.amount_sum for cell in provider)
    assert int(naive["count"].sum()) == total, (int(naive["count"].sum()), total)
    assert abs(float(naive["amount_sum"].sum()) - amounts) <= 1e-6 * max(amounts, 1.0)


def in_process_summary_s(engine: Engine, window: Window) -> float:
    """The router's GROUP BY alone, run here on the same file: no HTTP, no pydantic."""
    start = time.perf_counter()
    with Session(engine) as session:
        summarize_decisions(session, window.model, window.since, window.until)
    return time.perf_counter() - start


async def analysis_section(
    models: Models, scratch: Path, decisions: int, repeats: int, http_baseline: bool
) -> AnalysisBench:
    database = scratch / "router-1m.db"
    engine = create_router_engine(f"sqlite:///{database}")
    start = time.perf_counter()
    window = fill_decision_log(engine, models, decisions, seed=5)
    fill_s = time.perf_counter() - start
    print(f"filled the decision log: {2 * decisions} rows (live + shadow) in {fill_s:.1f}s")
    router_only = EmbeddedStack(
        stack_settings(scratch / "router-1m", models, router_database_url=f"sqlite:///{database}"),
        services=frozenset({"router"}),
    )
    try:
        async with router_only as stack:
            url = stack.settings.router_url
            files = models.files
            async with RouterClient(url, TOKEN) as router:
                await router.deploy(
                    files.model_id,
                    {files.version: files.artifact_name, CANDIDATE: models.fair},
                    files.version,
                )
            looks = [await one_look(url, window) for _ in range(repeats)]
            sql_only_s = in_process_summary_s(engine, window)
            provider = DecisionLogProvider(TargetResolver.single(url, TOKEN), timeout=600)
            gateway = RouterRef(target=GATEWAY)
            cells = (
                await provider.window(gateway, window.model, CANDIDATE, window.since, window.until)
            ).cells
            sql_s = []
            for _ in range(repeats):
                begin = time.perf_counter()
                naive = naive_sql(engine, window)
                sql_s.append(time.perf_counter() - begin)
            check_same_cells(cells, naive)
            http_s = None
            if http_baseline:
                begin = time.perf_counter()
                naive = await naive_http(url, window)
                http_s = time.perf_counter() - begin
                check_same_cells(cells, naive)
    finally:
        engine.dispose()
    return AnalysisBench(
        decisions=decisions,
        rows_in_log=2 * decisions,
        fill_s=fill_s,
        analysis_s=statistics.median(look[0] for look in looks),
        window_s=statistics.median(look[1] for look in looks),
        sql_only_s=sql_only_s,
        cells=looks[0][2],
        naive_sql_s=statistics.median(sql_s),
        naive_http_s=http_s,
        headline=looks[0][3],
    )


def print_analysis(bench: AnalysisBench) -> None:
    print(
        f"one look over {bench.decisions} live decisions ({bench.rows_in_log} rows with "
        f"shadows): {bench.analysis_s:.2f}s median, of which the provider's window "
        f"{bench.window_s:.2f}s ({bench.cells} cells cross the wire; the same GROUP BY "
        f"in-process, no HTTP: {bench.sql_only_s:.2f}s)"
    )
    print(f"  its verdict: {bench.headline}")
    print(
        f"  baseline SELECT of the window's rows into pandas + group-by: "
        f"{bench.naive_sql_s:.2f}s median, ratio {bench.analysis_s / bench.naive_sql_s:.2f}"
    )
    if bench.naive_http_s is not None:
        print(
            f"  baseline GET /decisions paged by 100k + pandas (once): "
            f"{bench.naive_http_s:.1f}s, ratio {bench.analysis_s / bench.naive_http_s:.3f}"
        )

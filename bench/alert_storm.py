"""Alert storm: thousands of Alertmanager notifications for many models, all at once.

What issue 5 promises under load: however many notifications race each other, each
model gets exactly one incident, its route goes to the fallback, and every alert of
every accepted delivery is on the audit trail (a repeat recorded as a repeat). The
storm is ``--notifications`` Alertmanager v4 webhook bodies spread evenly over
``--models`` models (``storm-000``...), each model's group as Alertmanager sends it:
the same alert re-sent again and again (same fingerprint and ``startsAt``), a second
alert joining the group for a while (notifications carrying both) and resolving, and
the first alert resolving and firing again twice (a new ``startsAt``). They are
POSTed to ``/v1/alerts/alertmanager`` at ``--concurrency`` requests in flight, a 5xx
or a dropped connection retried with backoff as Alertmanager does. Models are
interleaved, so a model's notifications mostly arrive in order; when several of one
model's are in flight at once (few models, high concurrency) some arrive out of
order and are counted ``stale``, as a late snapshot should be: the kinds vary from run
to run, the totals do not.

Figures: incidents opened (Temporal visibility, beside the watches' own memory and
the trail's ``watch.incident_opened``), alerts on the trail (``alert.received``)
against alerts in accepted deliveries (``lost`` is the difference), errors, the API's
p50/p99, the time from the first POST until every model's route was set on the
fallback (the route's own ``updated_at``, read from the router once the storm is sent:
nothing polls during it), and until every watch has
counted everything it was sent; then, from the watches' Temporal histories, where
containment waited (the route activities, or workflow tasks waiting for the worker),
and the warnings the stack logged during the storm. Baselines in the same run, same
API, same concurrency, same number of requests: ``GET /healthz`` (no token, no work)
and the same webhook with a body whose model is not registered (token, body parsing,
validation and the registry lookup, then 422: everything but Temporal), before the
storm and again after it (pooled for the ratio), so the ratio is what the
signal-with-start costs. Starts the embedded stack in a scratch folder, on free
ports, and stops it after; exits 1 unless every model has exactly one incident and
nothing accepted was lost. The load comes from ``--concurrency`` senders, each with a
connection of its own, as Alertmanager replicas have.

    .venv/bin/python -m bench.alert_storm [--models 100] [--notifications 10000] [--concurrency 64]

Last line: ``storm alerts=… incidents=… lost=… p99_ms=… all_contained_s=… contain_p50_s=…
contain_p99_s=…``, the last two per model, from its first accepted alert to its route
set on the fallback (the router's own ``updated_at`` of the route, read after the storm).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from api.tokens import Role, issue_token
from audit.trail import AuditTrail
from bench.figures import p50_p99
from config import Settings
from config.logging import configure_logging
from contracts.incident import SA_MODEL, WORKFLOW_TYPE
from contracts.routing import Serving
from contracts.watch import QUERY_WATCH, SIGNAL_ALERTS, WatchState, watch_workflow_id
from demo.credit_model import prepare_demo_model
from demo.gateway import deploy_credit
from demo.scenario import write_manifest
from registry.service import load_manifest_file
from router.client import RouterClient, RouterError
from stack.loopback import settings_on_free_ports
from stack.supervisor import EmbeddedStack
from stack.temporal import connect
from store.db import make_engine

ALERTMANAGER_PATH = "/v1/alerts/alertmanager"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
FIRST, SECOND = "FairnessDisparity", "ApprovalRateGap"
MAX_ATTEMPTS = 8
POST_TIMEOUT_S = 120.0
ROUTE_POLL_S = 0.5
ROUTE_POLL_CONCURRENCY = 8
QUERY_CONCURRENCY = 16
STALL_S = 300.0
"""Give up waiting for watches (or routes) after this long without progress: under a
storm on the embedded stack a route has taken minutes to go to the fallback."""
WARMUP_REQUESTS = 200


# ---- the storm: Alertmanager v4 bodies ---------------------------------------------------


@dataclass(frozen=True)
class Notification:
    model: str
    body: bytes
    alerts: int


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def am_alert(
    model: str, name: str, starts_at: datetime, ends_at: datetime | None
) -> dict[str, Any]:
    """One alert as Alertmanager 0.25 sends it (see tests/fixtures/alertmanager/)."""
    labels = {"alertname": name, "fairlane_model": model, "severity": "critical"}
    return {
        "status": "firing" if ends_at is None else "resolved",
        "labels": labels,
        "annotations": {
            "description": "disparate-impact ratio 0.71 (tolerance 0.80) over the last hour",
            "summary": f"{model}: approval-rate gap between groups above tolerance",
        },
        "startsAt": iso(starts_at),
        "endsAt": GO_ZERO_TIME if ends_at is None else iso(ends_at),
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=fairness_di_ratio",
        # Alertmanager's fingerprint is a hash of the label set: stable across episodes.
        "fingerprint": hashlib.blake2b(
            json.dumps(labels, sort_keys=True).encode(), digest_size=8
        ).hexdigest(),
    }


def am_body(model: str, alerts: list[dict[str, Any]]) -> bytes:
    """A webhook body for a receiver grouping by ``fairlane_model``."""
    common_labels = dict(alerts[0]["labels"])
    common_annotations = dict(alerts[0]["annotations"])
    for alert in alerts[1:]:
        common_labels = {k: v for k, v in common_labels.items() if alert["labels"].get(k) == v}
        common_annotations = {
            k: v for k, v in common_annotations.items() if alert["annotations"].get(k) == v
        }
    firing = any(alert["status"] == "firing" for alert in alerts)
    payload = {
        "receiver": "fairlane",
        "status": "firing" if firing else "resolved",
        "alerts": alerts,
        "groupLabels": {"fairlane_model": model},
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": f'{{}}:{{fairlane_model="{model}"}}',
        "truncatedAlerts": 0,
    }
    return json.dumps(payload).encode()


def model_storm(model: str, count: int, t0: datetime) -> list[Notification]:
    """``count`` notifications of one model's group, in the order Alertmanager sends them.

    The first alert fires from the start and is re-sent in every notification; it
    resolves at a third and at two thirds of the way (one notification says so) and
    fires again with a new ``startsAt`` right after. The second alert is in the group
    from a fifth to half of the way (those notifications carry two alerts) and leaves
    it resolved.
    """
    resolve_first = {count // 3, 2 * count // 3} if count >= 6 else set()
    second_from, second_until = count // 5, count // 2
    second_starts = t0 + timedelta(seconds=45)
    episode = 0
    notes: list[Notification] = []
    for i in range(count):
        first_starts = t0 + timedelta(minutes=15 * episode)
        if i in resolve_first:
            alerts = [am_alert(model, FIRST, first_starts, first_starts + timedelta(minutes=10))]
            episode += 1
        else:
            alerts = [am_alert(model, FIRST, first_starts, None)]
        if second_from <= i < second_until:
            alerts.append(am_alert(model, SECOND, second_starts, None))
        elif i == second_until and second_until > second_from:
            ends = second_starts + timedelta(minutes=5)
            alerts.append(am_alert(model, SECOND, second_starts, ends))
        notes.append(Notification(model, am_body(model, alerts), len(alerts)))
    return notes


def build_storm(models: list[str], notifications: int) -> list[Notification]:
    """Every model's notifications, interleaved round robin: each model's stay in order,
    about ``len(models)`` sends apart, as concurrent groups' notifications are."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    share, extra = divmod(notifications, len(models))
    per_model = [
        model_storm(model, share + (1 if i < extra else 0), t0) for i, model in enumerate(models)
    ]
    return [note for row in itertools.zip_longest(*per_model) for note in row if note is not None]


# ---- sending -------------------------------------------------------------------------------


@dataclass
class Attempt:
    latency_ms: float
    status: str  # the HTTP status, or the transport error's name


@dataclass
class Delivery:
    note: Notification
    attempts: list[Attempt] = field(default_factory=list)
    accepted: bool = False
    answer: dict[str, Any] | None = None
    sent_at: float = 0.0  # the accepted attempt's POST began (perf_counter)
    accepted_at: float = 0.0  # and its 202 came back


class Senders:
    """One HTTP client per concurrent sender, each on a connection of its own, as each
    Alertmanager replica has its own.

    One client sharing a pool of 64 connections spent most of the load generator's CPU
    in httpcore's pool bookkeeping, which checks every connection for every request: on
    the same two cores as the stack, the generator's own event loop was busy 60-70% of
    the storm's first seconds and held the answers it had already received.
    """

    def __init__(self, base_url: str, count: int) -> None:
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.clients = [
            httpx.AsyncClient(base_url=base_url, timeout=POST_TIMEOUT_S, limits=one)
            for _ in range(count)
        ]

    async def __aenter__(self) -> Senders:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients))


Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
L = TypeVar("L")


async def run_workers(
    items: int, lanes: Sequence[L], work: Callable[[int, L], Awaitable[None]]
) -> None:
    """``work(0, lane)``...``work(items - 1, lane)``, one at a time per lane (so as many at
    a time as there are lanes), in order of start."""
    counter = itertools.count()

    async def worker(lane: L) -> None:
        while (index := next(counter)) < items:
            await work(index, lane)

    await asyncio.gather(*(worker(lane) for lane in lanes))


async def deliver(api: httpx.AsyncClient, headers: dict[str, str], delivery: Delivery) -> None:
    """POST one notification; a 5xx or a transport error is retried with backoff, as
    Alertmanager retries (it keeps trying until the next notification of the group)."""
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            await asyncio.sleep(min(0.25 * 2 ** (attempt - 1), 5.0))
        start = time.perf_counter()
        try:
            response = await api.post(
                ALERTMANAGER_PATH, content=delivery.note.body, headers=headers
            )
        except httpx.TransportError as error:
            delivery.attempts.append(
                Attempt((time.perf_counter() - start) * 1000, type(error).__name__)
            )
            continue
        delivery.attempts.append(
            Attempt((time.perf_counter() - start) * 1000, str(response.status_code))
        )
        if response.status_code == 202:
            delivery.accepted, delivery.accepted_at = True, time.perf_counter()
            delivery.sent_at = start
            delivery.answer = response.json()
            return
        if response.status_code < 500:
            delivery.answer = {"status": response.status_code, "body": response.text[:500]}
            return


@dataclass
class Baseline:
    name: str
    latencies_ms: list[float]
    statuses: Counter[str]
    wall_s: float


async def baseline(
    name: str, requests: int, senders: Senders, send: Send, expected: int
) -> Baseline:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()

    async def one(_: int, client: httpx.AsyncClient) -> None:
        start = time.perf_counter()
        try:
            response = await send(client)
            status = str(response.status_code)
        except httpx.TransportError as error:
            status = type(error).__name__
        latencies.append((time.perf_counter() - start) * 1000)
        statuses[status] += 1

    await run_workers(WARMUP_REQUESTS, senders.clients, one)
    latencies.clear()
    statuses.clear()
    begin = time.perf_counter()
    await run_workers(requests, senders.clients, one)
    result = Baseline(name, latencies, statuses, time.perf_counter() - begin)
    p50, p99 = p50_p99(latencies)
    odd = {k: v for k, v in statuses.items() if k != str(expected)}
    print(
        f"baseline {name}: {requests} requests in {result.wall_s:.1f}s "
        f"({requests / result.wall_s:.0f}/s), p50_ms={p50:.1f} p99_ms={p99:.1f}"
        + (f", unexpected answers {dict(odd)}" if odd else ""),
        flush=True,
    )
    return result


# ---- watching the system -------------------------------------------------------------------


@dataclass(frozen=True)
class RouteTimes:
    """When each model's route went to the fallback (perf_counter), by the router's own
    clock: the ``updated_at`` of the route it serves."""

    set: dict[str, float]
    moved_on: dict[str, int]  # a route past its first change: its generation


async def routes_contained(
    router: RouterClient, models: list[str], errors: Counter[str]
) -> RouteTimes:
    """When each model's route went to the fallback, read once the storm is sent.

    Nothing polls during the storm: the route's ``updated_at`` is the router's clock when
    it applied the change (same machine, same clock), so polling would only find it later,
    and polling a hundred models ten times a second made the load generator spend on
    polls what it should spend sending, and loaded the router containment writes to.
    A route already past its first change (a generation above 1) has a later
    ``updated_at``: it is named, and counted as never contained (infinitely late). The
    models not on the fallback yet are read again every ``ROUTE_POLL_S``, for up to
    ``STALL_S`` without progress.
    """
    pending = set(models)
    times = RouteTimes(set={}, moved_on={})
    gate = asyncio.Semaphore(ROUTE_POLL_CONCURRENCY)
    last_progress = time.perf_counter()

    async def probe(model: str) -> None:
        async with gate:
            try:
                route = await router.get_route(model)
            except RouterError as error:
                errors[f"router {error.status_code or 'unreachable'}"] += 1
                return
        if route.serving is Serving.FALLBACK:
            if route.generation != 1:
                times.moved_on[model] = route.generation
            times.set[model] = time.perf_counter() - (time.time() - route.updated_at.timestamp())

    while pending:
        await asyncio.gather(*(probe(model) for model in sorted(pending)))
        if pending & times.set.keys():
            last_progress = time.perf_counter()
        pending -= times.set.keys()
        if pending and time.perf_counter() - last_progress > STALL_S:
            print(f"!! routes not on the fallback after {STALL_S:.0f}s: {sorted(pending)}")
            break
        await asyncio.sleep(ROUTE_POLL_S)
    if times.moved_on:
        print(f"!! routes past their first change (generation): {times.moved_on}")
    return times


async def watch_states(temporal: Client, models: list[str]) -> dict[str, WatchState | str]:
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def query(model: str) -> WatchState | str:
        async with gate:
            try:
                handle = temporal.get_workflow_handle(watch_workflow_id(model))
                state: WatchState = await handle.query(QUERY_WATCH, result_type=WatchState)
                return state
            except Exception as error:  # reported, not fatal: the watch may not exist
                return f"{type(error).__name__}: {error}"

    states = await asyncio.gather(*(query(model) for model in models))
    return dict(zip(models, states, strict=True))


async def until_counted(
    temporal: Client, expected: dict[str, int], begin: float
) -> tuple[dict[str, WatchState | str], float]:
    """Poll the watches until each has counted at least the alerts it was sent (or stalls)."""
    models = sorted(expected)
    last_total, last_progress = -1, time.perf_counter()
    while True:
        states = await watch_states(temporal, models)
        counted = {
            model: state.memory.counts.received if isinstance(state, WatchState) else 0
            for model, state in states.items()
        }
        total = sum(counted.values())
        behind = [m for m in models if counted[m] < expected[m]]
        if not behind:
            return states, time.perf_counter() - begin
        if total != last_total:
            last_total, last_progress = total, time.perf_counter()
        elif time.perf_counter() - last_progress > STALL_S:
            print(f"!! watches stalled {STALL_S:.0f}s with {len(behind)} behind: {behind[:10]}")
            return states, time.perf_counter() - begin
        print(
            f"  watches counted {total}/{sum(expected.values())} alerts "
            f"({len(behind)} models behind) at {time.perf_counter() - begin:.1f}s",
            flush=True,
        )
        await asyncio.sleep(1.0)


async def incident_models(temporal: Client) -> Counter[str]:
    """Incident workflows per model, from Temporal's visibility store."""
    per_model: Counter[str] = Counter()
    async for execution in temporal.list_workflows(f"WorkflowType = '{WORKFLOW_TYPE}'"):
        per_model[execution.typed_search_attributes.get(SA_MODEL) or "?"] += 1
    return per_model


@dataclass
class TrailCount:
    alerts: Counter[str]  # alert.received per model
    by_kind: Counter[str]
    under_watch: int  # recorded before the model's incident opened
    duplicates: int  # the same alert of the same delivery recorded more than once
    opened: Counter[str]  # watch.incident_opened per model
    total_records: int
    verified: bool
    verify_s: float


async def until_on_trail(
    database_url: str, expected: int, begin: float
) -> tuple[TrailCount, float]:
    """Count the trail until it holds every accepted alert (or stops growing): the watches
    record alerts through an activity on the main queue and do not wait for it, so the
    trail catches up after the watches have counted."""
    last, last_progress = -1, time.perf_counter()
    while True:
        trail = await asyncio.to_thread(count_trail, database_url)
        recorded = sum(trail.alerts.values())
        if recorded >= expected:
            return trail, time.perf_counter() - begin
        if recorded != last:
            last, last_progress = recorded, time.perf_counter()
        elif time.perf_counter() - last_progress > STALL_S:
            print(f"!! the trail stalled {STALL_S:.0f}s at {recorded}/{expected} alerts")
            return trail, time.perf_counter() - begin
        print(f"  trail holds {recorded}/{expected} alerts", flush=True)
        await asyncio.sleep(2)


def count_trail(database_url: str) -> TrailCount:
    engine = make_engine(database_url)
    try:
        trail = AuditTrail(engine)
        records = trail.records()
        alerts: Counter[str] = Counter()
        by_kind: Counter[str] = Counter()
        opened: Counter[str] = Counter()
        keys: Counter[tuple[str, str, str, str]] = Counter()
        under_watch = 0
        for record in records:
            if record.kind == "watch.incident_opened":
                opened[(record.incident_id or "").removeprefix("watch-")] += 1
            if record.kind != "alert.received":
                continue
            detail = json.loads(record.detail)
            alert = detail["alert"]
            alerts[alert["model"]] += 1
            by_kind[detail["kind"]] += 1
            under_watch += record.incident_id == detail["watch"]
            keys[
                (detail["delivery_id"], alert["fingerprint"], alert["starts_at"], alert["status"])
            ] += 1
        start = time.perf_counter()
        verified = trail.verify().ok
        verify_s = time.perf_counter() - start
    finally:
        engine.dispose()
    return TrailCount(
        alerts=alerts,
        by_kind=by_kind,
        under_watch=under_watch,
        duplicates=sum(n - 1 for n in keys.values() if n > 1),
        opened=opened,
        total_records=len(records),
        verified=verified,
        verify_s=verify_s,
    )


def log_sizes(logs: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in logs.glob("*.log")}


_TEXT_LOG = re.compile(r'level=(?P<level>\w+) msg="(?P<msg>[^"]*)"')


def log_findings(logs: Path, since: dict[str, int]) -> list[str]:
    """Warnings and errors the services logged after ``since`` (file offsets), counted by
    service, level and message (structlog's JSON lines, the Temporal server's text)."""
    found: Counter[tuple[str, str, str]] = Counter()
    for path in sorted(logs.glob("*.log")):
        with path.open("rb") as log:
            log.seek(since.get(path.name, 0))
            text = log.read().decode(errors="replace")
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                level, message = str(entry.get("level", "")), str(entry.get("event", entry))
            elif match := _TEXT_LOG.search(line):
                level, message = match["level"], match["msg"]
            elif "Traceback" in line or "Error" in line:
                level, message = "text", line.strip()
            else:
                continue
            if level.lower() in {"warning", "warn", "error", "critical", "fatal", "text"}:
                found[(path.stem, level.lower(), message[:140])] += 1
    return [
        f"{count:>6} x {service} {level}: {message}"
        for (service, level, message), count in found.most_common(12)
    ]


# ---- where the time went: the watches' own histories ---------------------------------------


def _at(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


@dataclass
class WatchTimeline:
    """One watch's history, as far as containment and its workflow tasks go."""

    signals: int = 0
    workflow_tasks: int = 0
    sticky_timeouts: int = 0  # a task the worker did not take within the sticky timeout
    failed_tasks: int = 0
    task_waits_s: list[float] = field(default_factory=list)  # scheduled -> started
    to_route_set_s: float | None = None  # first event -> contain's set_route completed
    in_route_activities_s: float = 0.0  # read_route + set_route, scheduled -> completed
    route_activities_queued_s: float = 0.0  # of which scheduled -> started
    to_incident_s: float | None = None  # first event -> open_incident completed
    open_queued_s: float | None = None  # open_incident: scheduled -> started (its last attempt)
    open_ran_s: float | None = None  # ... and started -> completed
    contain_task_queued_s: float | None = None  # the containing task: scheduled -> started
    contain_task_ran_s: float | None = None  # ... and started -> completed (the local activity)


def timeline(events: list[HistoryEvent]) -> WatchTimeline:
    line = WatchTimeline()
    # From the first alert: registration started the watch, with the manifest's signal.
    begin = next(
        (
            _at(event)
            for event in events
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and event.workflow_execution_signaled_event_attributes.signal_name == SIGNAL_ALERTS
        ),
        _at(events[0]),
    )
    task_scheduled: dict[int, float] = {}
    activities: dict[int, tuple[str, float]] = {}
    started: dict[int, float] = {}  # activity scheduled event id -> its start
    task: tuple[float, float, float] = (begin, begin, begin)  # last task scheduled, started, done
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            line.signals += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            task_scheduled[event.event_id] = _at(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            scheduled = event.workflow_task_started_event_attributes.scheduled_event_id
            line.task_waits_s.append(_at(event) - task_scheduled[scheduled])
            task = (task_scheduled[scheduled], _at(event), _at(event))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            line.workflow_tasks += 1
            task = (task[0], task[1], _at(event))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            line.sticky_timeouts += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            line.failed_tasks += 1
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED and line.to_route_set_s is None:
            # The watch contains in a local activity (contain_route): its marker lands
            # when the workflow task that ran it completes, just after the route was set.
            if b"contain_route" in event.marker_recorded_event_attributes.SerializeToString():
                line.to_route_set_s = _at(event) - begin
                line.contain_task_queued_s = task[1] - task[0]
                line.contain_task_ran_s = task[2] - task[1]
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            activities[event.event_id] = (name, _at(event))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = _at(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            scheduled_id = event.activity_task_completed_event_attributes.scheduled_event_id
            name, scheduled_at = activities[scheduled_id]
            if name in {"read_route", "set_route"} and line.to_route_set_s is None:
                line.in_route_activities_s += _at(event) - scheduled_at
                line.route_activities_queued_s += started.get(scheduled_id, scheduled_at) - (
                    scheduled_at
                )
                if name == "set_route":
                    line.to_route_set_s = _at(event) - begin
            elif name == "open_incident" and line.to_incident_s is None:
                line.to_incident_s = _at(event) - begin
                began = started.get(scheduled_id, scheduled_at)
                line.open_queued_s, line.open_ran_s = began - scheduled_at, _at(event) - began
    return line


def median_known(values: list[float | None]) -> float:
    """The median of the values known (0 when none is)."""
    return statistics.median([v for v in values if v is not None] or [0.0])


async def history_breakdown(temporal: Client, models: list[str]) -> None:
    """Read every watch's history and print where containment waited: for activities
    (reading and setting the route) or for workflow tasks (the worker taking the next
    step), and how long workflow tasks sat in their queues."""
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def one(model: str) -> WatchTimeline:
        async with gate:
            history = await temporal.get_workflow_handle(watch_workflow_id(model)).fetch_history()
        return timeline(list(history.events))

    lines = await asyncio.gather(*(one(model) for model in models))
    contained = [line for line in lines if line.to_route_set_s is not None]
    to_set = [line.to_route_set_s for line in contained if line.to_route_set_s is not None]
    in_activities = [line.in_route_activities_s for line in contained]
    queued = [line.route_activities_queued_s for line in contained]
    waiting = [(line.to_route_set_s or 0.0) - line.in_route_activities_s for line in contained]
    opened = [line.to_incident_s for line in lines if line.to_incident_s is not None]
    open_queued = median_known([line.open_queued_s for line in lines])
    open_ran = median_known([line.open_ran_s for line in lines])
    waits = [wait for line in lines for wait in line.task_waits_s]
    s50, s_max = statistics.median(to_set or [0.0]), max(to_set, default=0.0)
    w50, w99 = p50_p99(waits)
    print(
        f"inside the watches (their histories): first signal to route set p50 {s50:.1f}s "
        f"max {s_max:.1f}s, of which in read_route + set_route (queued and running) p50 "
        f"{statistics.median(in_activities or [0.0]):.1f}s (queued p50 "
        f"{statistics.median(queued or [0.0]):.1f}s) and waiting for workflow tasks "
        f"p50 {statistics.median(waiting or [0.0]):.1f}s max {max(waiting, default=0.0):.1f}s; "
        f"to the incident opened p50 {statistics.median(opened or [0.0]):.1f}s "
        f"max {max(opened, default=0.0):.1f}s, of which open_incident waited for a "
        f"containment worker's activity slot p50 {open_queued:.1f}s and ran p50 {open_ran:.2f}s"
    )
    task_queued = [
        line.contain_task_queued_s for line in contained if line.contain_task_queued_s is not None
    ]
    task_ran = [
        line.contain_task_ran_s for line in contained if line.contain_task_ran_s is not None
    ]
    if task_queued:
        q50, q99 = p50_p99(task_queued)
        r50, r99 = p50_p99(task_ran)
        print(
            f"  the workflow task that contained: waited to be picked up p50 {q50:.2f}s p99 "
            f"{q99:.1f}s, ran (containing, then recording it) p50 {r50:.2f}s p99 {r99:.1f}s"
        )
    print(
        f"  {sum(line.workflow_tasks for line in lines)} workflow tasks for "
        f"{sum(line.signals for line in lines)} signals; a task's wait to be picked up p50 "
        f"{w50:.2f}s p99 {w99:.1f}s max {max(waits, default=0.0):.1f}s; "
        f"{sum(line.sticky_timeouts for line in lines)} tasks timed out waiting (the worker "
        f"did not take them from its sticky queue in time: rescheduled on the shared queue, "
        f"the history replayed), {sum(line.failed_tasks for line in lines)} failed"
        + (
            f"; {len(lines) - len(contained)} watches without a route set"
            if len(contained) < len(lines)
            else ""
        )
    )


# ---- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    recorded: int
    incidents: int
    lost: int
    p99_ms: float
    all_contained_s: float
    contain_p50_s: float
    contain_p99_s: float
    ok: bool


async def register_models(
    api: httpx.AsyncClient, router: RouterClient, settings: Settings, data_dir: Path, count: int
) -> list[str]:
    """The demo model's artifact deployed at the one router under ``count`` model ids, and
    each registered in Fairlane from the demo's manifest with its id changed."""
    files = prepare_demo_model(data_dir)
    template = load_manifest_file(write_manifest(files))
    models = [f"storm-{i:03d}" for i in range(count)]

    async def one(index: int, api: httpx.AsyncClient) -> None:
        model = models[index]
        await deploy_credit(router, model, {files.version: files.artifact_name}, files.version)
        manifest = template.model_copy(update={"id": model})
        answer = await api.post("/v1/models", json=manifest.model_dump(mode="json"))
        if answer.is_error:
            raise SystemExit(f"registering {model}: {answer.status_code} {answer.text[:1000]}")

    await run_workers(count, [api] * 4, one)
    return models


@dataclass
class Storm:
    deliveries: list[Delivery]
    t0: float  # the first POST
    sent_s: float
    routes: RouteTimes  # when each route went to the fallback
    route_errors: Counter[str]

    @property
    def accepted(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.accepted]

    def expected(self) -> Counter[str]:
        """Alerts per model in accepted deliveries: what the trail must hold."""
        expected: Counter[str] = Counter()
        for delivery in self.accepted:
            expected[delivery.note.model] += delivery.note.alerts
        return expected

    def latencies_ms(self) -> list[float]:
        """The accepted POSTs' own latencies (a retried delivery's last attempt)."""
        return [d.attempts[-1].latency_ms for d in self.accepted]


async def send_storm(
    senders: Senders,
    headers: dict[str, str],
    router: RouterClient,
    models: list[str],
    storm: list[Notification],
) -> Storm:
    deliveries = [Delivery(note) for note in storm]
    route_errors: Counter[str] = Counter()

    async def send(index: int, client: httpx.AsyncClient) -> None:
        await deliver(client, headers, deliveries[index])

    t0 = time.perf_counter()
    await run_workers(len(deliveries), senders.clients, send)
    sent_s = time.perf_counter() - t0
    routes = await routes_contained(router, models, route_errors)
    return Storm(deliveries, t0, sent_s, routes, route_errors)


def print_sending(storm: Storm) -> None:
    deliveries, accepted = storm.deliveries, storm.accepted
    attempts = [a for d in deliveries for a in d.attempts]
    failed = [d for d in deliveries if not d.accepted]
    miscounted = [
        d for d in accepted if (d.answer or {}).get("models") != {d.note.model: d.note.alerts}
    ]
    print(
        f"sent in {storm.sent_s:.1f}s ({len(deliveries) / storm.sent_s:.0f} notifications/s): "
        f"{len(accepted)} accepted ({sum(storm.expected().values())} alerts), {len(failed)} "
        f"errors after retries, {sum(len(d.attempts) > 1 for d in deliveries)} deliveries "
        f"retried ({len(attempts) - len(deliveries)} retries); answers by status "
        f"{dict(Counter(a.status for a in attempts))}",
        flush=True,
    )
    if miscounted:
        print(f"!! {len(miscounted)} 202 answers did not count the alerts sent")
    for d in failed[:5]:
        print(f"!! not accepted: {d.note.model} {[a.status for a in d.attempts]} {d.answer}")
    latencies = storm.latencies_ms()
    p50, p99 = p50_p99(latencies)
    every50, every99 = p50_p99([a.latency_ms for a in attempts])
    print(
        f"API accepted POSTs p50_ms={p50:.1f} p99_ms={p99:.1f} "
        f"max_ms={max(latencies, default=0):.1f} (every attempt: p50_ms={every50:.1f} "
        f"p99_ms={every99:.1f})",
        flush=True,
    )


@dataclass(frozen=True)
class Containment:
    all_contained_s: float  # the first POST to the last route set on the fallback
    p50_s: float  # per model, its first alert POSTed (and accepted) to its route set on the
    p99_s: float  # fallback; a model never seen there counts as infinitely late


def print_containment(storm: Storm, models: list[str]) -> Containment:
    """Print when the routes went to the fallback, in all and per model."""
    t0 = storm.t0
    contained = {m: at for m, at in storm.routes.set.items() if m not in storm.routes.moved_on}
    first_sent: dict[str, float] = {}
    first_accepted: dict[str, float] = {}
    for d in storm.accepted:
        model = d.note.model
        first_sent[model] = min(d.sent_at, first_sent.get(model, d.sent_at))
        first_accepted[model] = min(d.accepted_at, first_accepted.get(model, d.accepted_at))
    since_sent = [contained.get(m, float("inf")) - at for m, at in first_sent.items()]
    since_accepted = [contained[m] - first_accepted[m] for m in contained if m in first_accepted]
    c50, c99 = p50_p99(since_sent)
    a50, a99 = p50_p99(since_accepted)
    all_contained_s = max(contained.values(), default=t0) - t0
    print(
        f"routes on the fallback: {len(contained)}/{len(models)}, all by "
        f"{all_contained_s:.2f}s after the first POST (the first at "
        f"{min(contained.values(), default=t0) - t0:.2f}s); per model, from its first "
        f"alert POSTed: p50 {c50:.2f}s p99 {c99:.2f}s (from its 202: p50 {a50:.2f}s "
        f"p99 {a99:.2f}s)"
        + "; times are the router's own (the routes' updated_at)"
        + (f"; route poll errors {dict(storm.route_errors)}" if storm.route_errors else ""),
        flush=True,
    )
    return Containment(all_contained_s, c50, c99)


async def count_incidents(temporal: Client, models: list[str]) -> Counter[str]:
    """Incident workflows per model, once visibility has caught up with the starts."""
    deadline = time.monotonic() + 10
    visible = await incident_models(temporal)
    while sum(visible[m] for m in models) < len(models) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        visible = await incident_models(temporal)
    await asyncio.sleep(1.0)  # and a late duplicate would have had its moment
    return await incident_models(temporal)


async def run(args: argparse.Namespace, data_dir: Path) -> Outcome:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load} at the start", flush=True)
    settings = settings_on_free_ports(data_dir)
    admin = issue_token(settings.resolved_tokens_file, "bench-admin", [Role.ADMIN])
    sender = issue_token(settings.resolved_tokens_file, "alertmanager", [Role.ALERT_SOURCE])
    stack = EmbeddedStack(settings)
    begin = time.perf_counter()
    await stack.start()
    settings = stack.settings
    assert settings.router_token is not None
    print(f"embedded stack up in {time.perf_counter() - begin:.1f}s", flush=True)
    headers = {"Authorization": f"Bearer {sender}", "Content-Type": "application/json"}
    try:
        temporal = await connect(settings)
        async with (
            RouterClient(settings.router_url, settings.router_token.get_secret_value()) as router,
            httpx.AsyncClient(
                base_url=settings.api_url, headers={"Authorization": f"Bearer {admin}"}, timeout=60
            ) as admin_api,
            Senders(settings.api_url, args.concurrency) as senders,
        ):
            begin = time.perf_counter()
            models = await register_models(admin_api, router, settings, data_dir, args.models)
            print(
                f"{len(models)} models deployed at the router and registered in "
                f"{time.perf_counter() - begin:.1f}s",
                flush=True,
            )
            notes = build_storm(models, args.notifications)
            print(
                f"storm: {len(notes)} notifications carrying {sum(n.alerts for n in notes)} "
                f"alerts ({sum(n.alerts == 2 for n in notes)} with two), concurrency "
                f"{args.concurrency}",
                flush=True,
            )

            unregistered = am_body(
                "storm-unregistered",
                [am_alert("storm-unregistered", FIRST, datetime.now(UTC), None)],
            )

            def post_rejected(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
                return client.post(ALERTMANAGER_PATH, content=unregistered, headers=headers)

            baseline_requests = args.baseline_requests or len(notes)
            rejected = await baseline(
                "POST webhook, model unregistered (422)",
                baseline_requests,
                senders,
                post_rejected,
                expected=422,
            )
            healthz = await baseline(
                "GET /healthz",
                baseline_requests,
                senders,
                lambda client: client.get("/healthz"),
                200,
            )
            logs_at_storm = log_sizes(data_dir / "logs")

            storm = await send_storm(senders, headers, router, models, notes)
            print_sending(storm)
            containment = print_containment(storm, models)
            expected = storm.expected()
            states, counted_s = await until_counted(temporal, dict(expected), storm.t0)
            print(f"watches counted every accepted alert by {counted_s:.1f}s after the first POST")
            visible = await count_incidents(temporal, models)
            trail, on_trail_s = await until_on_trail(
                settings.resolved_database_url, sum(expected.values()), storm.t0
            )
            print(f"every accepted alert on the trail by {on_trail_s:.1f}s after the first POST")
            await history_breakdown(temporal, models)
            rejected_after = await baseline(
                "POST webhook, model unregistered (422), again after the storm",
                baseline_requests,
                senders,
                post_rejected,
                expected=422,
            )
            stack.check_alive()
    finally:
        stack.stop()

    counts: Counter[str] = Counter()
    held_incidents = 0
    unreadable: dict[str, str] = {}
    for model, state in states.items():
        if isinstance(state, WatchState):
            counts.update(state.memory.counts.model_dump())
            held_incidents += len(state.memory.incidents)
        else:
            unreadable[model] = state
    incidents = sum(visible[m] for m in models)
    not_one = {m: visible[m] for m in models if visible[m] != 1}
    accepted_alerts = sum(expected.values())
    recorded = sum(trail.alerts[m] for m in models)
    lost = accepted_alerts - recorded
    uneven = {m: expected[m] - trail.alerts[m] for m in models if expected[m] != trail.alerts[m]}
    print(
        f"incidents: {incidents} IncidentWorkflow executions for {len(models)} models "
        f"(visibility); the watches hold {held_incidents}; the trail has "
        f"{sum(trail.opened[m] for m in models)} watch.incident_opened"
        + (f"; models without exactly one: {not_one}" if not_one else "")
    )
    print(
        f"watches counted {counts['received']} alerts: new={counts['new']} "
        f"repeat={counts['repeat']} resolved={counts['resolved']} refired={counts['refired']} "
        f"stale={counts['stale']}"
        + (f"; unreadable watches: {dict(list(unreadable.items())[:3])}" if unreadable else "")
    )
    print(
        f"trail: {recorded} alert.received of {accepted_alerts} accepted "
        f"({dict(trail.by_kind)}), {trail.under_watch} before their model's incident opened, "
        f"{trail.duplicates} recorded twice; {trail.total_records} records in all, the chain "
        f"{'verifies' if trail.verified else 'DOES NOT VERIFY'} ({trail.verify_s:.1f}s)"
        + (f"; accepted minus recorded, per model: {uneven}" if uneven else "")
    )
    # The ratio's baseline: the rejected webhook before and after the storm, pooled, so a
    # machine that got busier (or quieter) during the run weighs on both sides.
    p50, p99 = p50_p99(storm.latencies_ms())
    r50, r99 = p50_p99(rejected.latencies_ms + rejected_after.latencies_ms)
    h50, h99 = p50_p99(healthz.latencies_ms)
    print(
        f"alert POST vs baselines at concurrency {args.concurrency}: p50 {p50:.1f}ms vs "
        f"{r50:.1f}ms rejected webhook (before and after, pooled) and {h50:.1f}ms healthz; "
        f"p99 {p99:.1f}ms vs {r99:.1f}ms and {h99:.1f}ms: ratio p50 {p50 / r50:.1f} "
        f"p99 {p99 / r99:.1f} vs the rejected webhook (p99 {p99 / h99:.1f} vs healthz)"
    )
    findings = log_findings(data_dir / "logs", logs_at_storm)
    if findings:
        print("warnings and errors in the stack's logs since the storm (most frequent first):")
        for line in findings:
            print(f"  {line}")
    return Outcome(
        recorded=recorded,
        incidents=incidents,
        lost=lost,
        p99_ms=p99,
        all_contained_s=containment.all_contained_s,
        contain_p50_s=containment.p50_s,
        contain_p99_s=containment.p99_s,
        ok=incidents == len(models) and not not_one and lost == 0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs)")
    parser.add_argument(
        "--baseline-requests",
        type=int,
        default=0,
        help="requests per baseline run (default: as many as notifications)",
    )
    args = parser.parse_args()
    if args.models < 1 or args.notifications < args.models:
        parser.error("need at least one model and one notification per model")
    configure_logging("console", "warning")
    if args.keep:
        scratch = tempfile.mkdtemp(prefix="fairlane-bench-")
        print(f"scratch folder (kept): {scratch}")
        outcome = asyncio.run(run(args, Path(scratch)))
    else:
        with tempfile.TemporaryDirectory(prefix="fairlane-bench-") as scratch:
            outcome = asyncio.run(run(args, Path(scratch)))
    print(
        f"storm alerts={outcome.recorded} incidents={outcome.incidents} lost={outcome.lost} "
        f"p99_ms={outcome.p99_ms:.1f} all_contained_s={outcome.all_contained_s:.2f} "
        f"contain_p50_s={outcome.contain_p50_s:.2f} contain_p99_s={outcome.contain_p99_s:.2f}"
    )
    sys.exit(0 if outcome.ok else 1)


if __name__ == "__main__":
    main()

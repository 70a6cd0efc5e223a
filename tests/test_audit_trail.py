"""The audit trail on SQLite and on a real Postgres: append, read, verify, export.

Tampering is done the way an intruder with database access would: raw SQL on the tables,
bypassing ``AuditTrail``. Every check must name the seq where the damage is.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from audit import (
    GENESIS_HASH,
    AuditTrail,
    ChainProblem,
    IncidentTrailExport,
    canonical_json,
    digest,
    record_hash,
)
from audit.chain import utc_iso
from audit.records import AuditRecord
from contracts.audit import AuditEvent
from store.db import create_tables, make_engine

_AUDIT_TABLES = ("audit_record", "audit_head")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A fresh pair of audit tables on the database under test."""
    engine = make_engine(database_url)
    SQLModel.metadata.drop_all(
        engine, tables=[SQLModel.metadata.tables[name] for name in _AUDIT_TABLES]
    )
    create_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def trail(engine: Engine) -> AuditTrail:
    return AuditTrail(engine)


def _event(n: int, incident_id: str | None = "inc-1", **changes: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "event_id": f"ev-{n}",
        "incident_id": incident_id,
        "kind": "activity.completed",
        "actor": "worker:w1",
        "step": "route",
        "attempt": 1,
        "inputs_digest": digest({"n": n}),
        "outputs_digest": digest({"route": "fallback", "n": n}),
        "detail": {"n": n, "why": "contain harm", "nested": {"b": 2, "a": 1}},
    }
    return AuditEvent(**{**fields, **changes})


def _fill(trail: AuditTrail, count: int) -> None:
    for n in range(1, count + 1):
        trail.append(_event(n))


def _sql(engine: Engine, *statements: str, **params: Any) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), params)


def test_importing_audit_registers_its_tables() -> None:
    assert set(_AUDIT_TABLES) <= set(SQLModel.metadata.tables)


def test_append_and_read_back(trail: AuditTrail) -> None:
    at = datetime(2025, 3, 1, 14, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    first = trail.append(_event(1, at=at))
    trail.append(_event(2, incident_id="inc-2"))
    trail.append(_event(3))

    records = trail.records()
    assert [r.seq for r in records] == [1, 2, 3]
    stored = records[0]
    assert stored == first
    assert stored.event_id == "ev-1"
    assert stored.actor == "worker:w1"
    assert stored.inputs_digest == digest({"n": 1})
    assert stored.detail == '{"n":1,"nested":{"a":1,"b":2},"why":"contain harm"}'
    assert stored.at == at and stored.at.tzinfo == UTC
    assert stored.prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]

    assert [r.seq for r in trail.records(incident_id="inc-1")] == [1, 3]
    assert [r.seq for r in trail.records(after_seq=1)] == [2, 3]
    assert [r.seq for r in trail.records(limit=2)] == [1, 2]
    assert [r.seq for r in trail.records(incident_id="inc-1", after_seq=1, limit=1)] == [3]


def test_append_is_idempotent_by_event_id(trail: AuditTrail) -> None:
    first = trail.append(_event(1))
    again = trail.append(_event(1, actor="someone-else", detail={"changed": True}))

    assert again == first
    assert len(trail.records()) == 1
    assert trail.verify().head_seq == 1


def test_verify_accepts_an_empty_trail(trail: AuditTrail) -> None:
    report = trail.verify()
    assert report.ok and report.records_checked == 0 and report.head_seq is None


def test_verify_accepts_an_intact_chain(trail: AuditTrail) -> None:
    _fill(trail, 20)
    report = trail.verify()
    assert report.ok
    assert (report.records_checked, report.head_seq, report.problems) == (20, 20, [])


@pytest.mark.parametrize(
    ("update", "value"),
    [
        ("UPDATE audit_record SET detail = :value WHERE seq = 7", '{"n":7,"why":"nothing"}'),
        ("UPDATE audit_record SET actor = :value WHERE seq = 7", "mallory"),
        ("UPDATE audit_record SET at = :value WHERE seq = 7", "2020-01-01 00:00:00.000000"),
    ],
    ids=["detail", "actor", "at"],
)
def test_verify_detects_a_record_altered_in_place(
    trail: AuditTrail, engine: Engine, update: str, value: str
) -> None:
    _fill(trail, 10)
    _sql(engine, update, value=value)

    report = trail.verify()
    assert not report.ok
    assert report.problems == [ChainProblem(seq=7, problem="record 7 altered: hash mismatch")]


def test_verify_detects_a_rewritten_record_whose_hash_was_recomputed(
    trail: AuditTrail, engine: Engine
) -> None:
    _fill(trail, 10)
    forged = trail.records(after_seq=6, limit=1)[0]
    forged.actor = "mallory"
    forged_hash = record_hash(forged.prev_hash, forged.chained_fields())
    _sql(
        engine,
        "UPDATE audit_record SET actor = 'mallory', hash = :forged WHERE seq = 7",
        forged=forged_hash,
    )

    assert trail.verify().problems == [
        ChainProblem(seq=8, problem="record 8 does not link to record 7: one of them was rewritten")
    ]


def test_verify_detects_a_removed_record(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail, 10)
    _sql(engine, "DELETE FROM audit_record WHERE seq = 7")

    report = trail.verify()
    assert report.records_checked == 9
    assert report.problems == [ChainProblem(seq=7, problem="record 7 missing (gap after 6)")]


def test_verify_detects_several_removed_records(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail, 10)
    _sql(engine, "DELETE FROM audit_record WHERE seq BETWEEN 3 AND 5")

    assert trail.verify().problems == [
        ChainProblem(seq=3, problem="records 3-5 missing (gap after 2)")
    ]


def test_verify_detects_two_records_swapped(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail, 10)
    _sql(
        engine,
        "UPDATE audit_record SET seq = -1 WHERE seq = 4",
        "UPDATE audit_record SET seq = 4 WHERE seq = 5",
        "UPDATE audit_record SET seq = 5 WHERE seq = -1",
    )

    assert trail.verify().problems == [
        ChainProblem(seq=4, problem="record 4 out of order: holds record 5"),
        ChainProblem(seq=5, problem="record 5 out of order: holds record 4"),
    ]


def test_verify_detects_a_truncated_tail(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail, 10)
    _sql(engine, "DELETE FROM audit_record WHERE seq > 8")

    assert trail.verify().problems == [
        ChainProblem(seq=9, problem="tail truncated: head says 10, last record is 8")
    ]


def test_verify_detects_records_added_behind_the_heads_back(
    trail: AuditTrail, engine: Engine
) -> None:
    _fill(trail, 5)
    _sql(engine, "UPDATE audit_head SET last_seq = 4")

    assert trail.verify().problems == [
        ChainProblem(seq=5, problem="records after head: head says 4, last record is 5")
    ]


def test_concurrent_appends_from_threads_make_one_chain(trail: AuditTrail) -> None:
    threads, per_thread = 8, 25
    start = threading.Barrier(threads)

    def append_many(worker: int) -> None:
        start.wait()
        for n in range(per_thread):
            trail.append(_event(worker * 1000 + n))

    pool = [threading.Thread(target=append_many, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    assert [r.seq for r in trail.records()] == list(range(1, threads * per_thread + 1))
    report = trail.verify()
    assert report.ok and report.records_checked == threads * per_thread


def test_appends_that_arrive_together_share_a_transaction(
    trail: AuditTrail, engine: Engine
) -> None:
    """40 activities appending at once (a storm's containments) take a handful of
    commits, not 40, and each gets its own record back, committed."""
    commits: list[int] = []
    event.listen(engine, "commit", lambda _connection: commits.append(1))
    appenders = 40
    start = threading.Barrier(appenders)
    stored: dict[int, AuditRecord] = {}

    def append(n: int) -> None:
        start.wait()
        stored[n] = trail.append(_event(n))

    pool = [threading.Thread(target=append, args=(n,)) for n in range(appenders)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    assert {n: r.event_id for n, r in stored.items()} == {n: f"ev-{n}" for n in range(appenders)}
    assert sorted(r.seq for r in stored.values()) == list(range(1, appenders + 1))
    assert len(commits) < appenders / 2, f"{len(commits)} commits for {appenders} appends"
    report = trail.verify()
    assert report.ok and report.records_checked == appenders


def _append_from_process(url: str, worker: int, count: int, start: Any) -> None:
    """Runs in a child process: its own engine, its own connections, the same chain."""
    engine = make_engine(url)
    trail = AuditTrail(engine)
    start.wait()
    for n in range(count):
        trail.append(_event(worker * 1000 + n))
    engine.dispose()


def test_concurrent_appends_from_processes_make_one_chain(
    trail: AuditTrail, database_url: str
) -> None:
    processes, per_process = 2, 40
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes)
    children = [
        context.Process(target=_append_from_process, args=(database_url, w, per_process, start))
        for w in range(processes)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    assert [child.exitcode for child in children] == [0] * processes

    assert [r.seq for r in trail.records()] == list(range(1, processes * per_process + 1))
    assert trail.verify().ok


def test_export_holds_exactly_the_incidents_records(trail: AuditTrail) -> None:
    for n in range(1, 9):
        trail.append(_event(n, incident_id="inc-a" if n % 2 else "inc-b"))
    trail.append(_event(9, incident_id=None))

    export = trail.export("inc-a")

    assert export.incident_id == "inc-a"
    assert [r.seq for r in export.records] == [1, 3, 5, 7]
    assert {r.incident_id for r in export.records} == {"inc-a"}
    assert export.verification.ok and export.verification.head_seq == 9
    assert IncidentTrailExport.model_validate_json(export.model_dump_json()) == export
    for record in export.records:
        fields = record.model_dump(exclude={"hash", "prev_hash"})
        fields.update(detail=canonical_json(record.detail), at=utc_iso(record.at))
        assert record_hash(record.prev_hash, fields) == record.hash  # checkable offline


def test_export_carries_the_verdict_on_a_damaged_chain(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail, 4)
    _sql(engine, "UPDATE audit_record SET detail = 'not json' WHERE seq = 2")

    export = trail.export("inc-1")

    assert export.records[1].detail == "not json"
    assert not export.verification.ok
    assert export.verification.problems == [
        ChainProblem(seq=2, problem="record 2 altered: hash mismatch")
    ]

"""The shared decision store: idempotent all-or-nothing appends, outcomes, rollup windows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from contracts.metrics import Side
from contracts.routing import Serving
from decisions.records import DecisionRecord, OutcomeRecord
from decisions.store import (
    DecisionConflict,
    OutcomeConflict,
    UnknownDecision,
    append,
    minute_edges,
    record_outcomes,
    window,
)
from decisions.tables import DECISIONS, ROLLUPS, create_decision_tables
from store.db import make_engine

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'decisions.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    create_decision_tables(engine)
    with engine.begin() as connection:  # the Postgres server is shared by the session
        connection.execute(ROLLUPS.delete())
        connection.execute(DECISIONS.delete())
    yield engine
    engine.dispose()


def record(n: int, **changes: object) -> DecisionRecord:
    values: dict[str, object] = {
        "decision_id": f"d{n}",
        "model": "hiring",
        "version": "v1",
        "served_by": Serving.PRIMARY,
        "at": T0 + timedelta(seconds=n),
        "group": "a" if n % 2 else "b",
        "stratum": "low",
        "decision": n % 3 != 0,
        "amount": float(n),
    }
    values.update(changes)
    return DecisionRecord.model_validate(values)


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        rows = connection.execute(select(func.count()).select_from(DECISIONS)).scalar_one()
        rolled = connection.execute(select(func.sum(ROLLUPS.c.count))).scalar_one()
    return rows, int(rolled or 0)


def test_a_window_from_the_rollups_sums_what_was_appended(engine: Engine) -> None:
    records = [record(n) for n in range(1, 41)]
    records += [
        record(100, served_by=Serving.CANDIDATE, version="v2", group="a", decision=True),
        record(101, served_by=Serving.CANDIDATE, version="v3", group="a"),  # other candidate
        record(102, version="v2", shadow=True),  # shadow: never in a window
        record(103, served_by=Serving.FALLBACK, version="rules", rules_version="r1"),
    ]
    with Session(engine) as session:
        assert append(session, records) == len(records)
        look = window(session, "hiring", "v2", T0, T0 + timedelta(minutes=5))
    assert look.decisions == 42  # 40 primary + 1 candidate v2 + 1 fallback
    candidate = [c for c in look.cells if c.side is Side.CANDIDATE]
    assert [(c.group, c.count, c.amount_sum) for c in candidate] == [("a", 1, 100.0)]
    stable_a_approved = [
        c for c in look.cells if c.side is Side.STABLE and c.group == "a" and c.approved
    ]
    stable = [*records[:40], records[-1]]  # primary and fallback
    expected = [r for r in stable if r.group == "a" and r.decision]
    assert sum(c.count for c in stable_a_approved) == len(expected)
    assert sum(c.amount_sumsq for c in stable_a_approved) == sum(r.amount**2 for r in expected)  # type: ignore[operator]
    assert look.covered_since == T0 and look.covered_until == T0 + timedelta(minutes=5)


def test_window_edges_count_the_minutes_overlapping_the_window(engine: Engine) -> None:
    at = T0 + timedelta(minutes=3, seconds=10)
    with Session(engine) as session:
        append(session, [record(1, at=at)])
        inside = window(
            session, "hiring", "v2", at - timedelta(seconds=5), at + timedelta(seconds=1)
        )
        before = window(session, "hiring", "v2", T0, T0 + timedelta(minutes=3))
        after = window(
            session, "hiring", "v2", T0 + timedelta(minutes=4), T0 + timedelta(minutes=9)
        )
    assert inside.decisions == 1
    assert inside.covered_since == T0 + timedelta(minutes=3)
    assert inside.covered_until == T0 + timedelta(minutes=4)
    assert before.decisions == 0 and after.decisions == 0
    assert minute_edges(T0, T0) == (minute_edges(T0, T0)[0],) * 2


def test_a_resent_batch_changes_nothing(engine: Engine) -> None:
    records = [record(n) for n in range(10)]
    with Session(engine) as session:
        assert append(session, records) == 10
        assert append(session, records) == 0
        assert append(session, [*records, record(10)]) == 1
    assert counts(engine) == (11, 11)


def test_a_different_record_under_a_known_id_is_refused_and_nothing_is_written(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        append(session, [record(1)])
        with pytest.raises(DecisionConflict) as refused:
            append(session, [record(2), record(1, amount=99.0), record(3)])
    assert refused.value.index == 1 and refused.value.field == "amount"
    assert "'d1'" in str(refused.value)
    assert counts(engine) == (1, 1)


def test_the_same_id_twice_in_a_batch(engine: Engine) -> None:
    with Session(engine) as session:
        assert append(session, [record(1), record(1)]) == 1
        with pytest.raises(DecisionConflict) as refused:
            append(session, [record(2), record(2, group="zz")])
    assert (refused.value.index, refused.value.field) == (1, "group")
    assert counts(engine) == (1, 1)


def test_outcomes_move_rollups_and_are_final(engine: Engine) -> None:
    with Session(engine) as session:
        append(session, [record(n, group="a", decision=True, amount=10.0) for n in range(1, 5)])
        done = record_outcomes(
            session,
            "hiring",
            [
                OutcomeRecord(decision_id="d1", outcome=True),
                OutcomeRecord(decision_id="d2", outcome=False),
            ],
        )
        assert (done.recorded, done.unchanged) == (2, 0)
        assert [
            (c.outcome, c.count, c.amount_sum) for c in sorted(done.cells, key=lambda c: c.outcome)
        ] == [
            (False, 1, 10.0),
            (True, 1, 10.0),
        ]
        again = record_outcomes(session, "hiring", [OutcomeRecord(decision_id="d1", outcome=True)])
        assert (again.recorded, again.unchanged) == (0, 1)
        with pytest.raises(OutcomeConflict) as contradicted:
            record_outcomes(
                session,
                "hiring",
                [
                    OutcomeRecord(decision_id="d3", outcome=True),
                    OutcomeRecord(decision_id="d1", outcome=False),
                ],
            )
        assert contradicted.value.index == 1
        with pytest.raises(UnknownDecision) as unknown:
            record_outcomes(
                session,
                "hiring",
                [
                    OutcomeRecord(decision_id="d3", outcome=True),
                    OutcomeRecord(decision_id="nope", outcome=True),
                ],
            )
        assert (unknown.value.index, unknown.value.field) == (1, "decision_id")
        look = window(session, "hiring", "v2", T0, T0 + timedelta(minutes=1))
    by_outcome = {c.outcome: c.count for c in look.cells}
    assert by_outcome == {True: 1, False: 1, None: 2}  # d3 was not recorded (all or nothing)
    assert sum(c.amount_sum for c in look.cells) == 40.0


def test_amount_only_decisions_count_as_granted(engine: Engine) -> None:
    with Session(engine) as session:
        append(session, [record(1, decision=None, amount=5.0)])
        look = window(session, "hiring", "v2", T0, T0 + timedelta(minutes=1))
    assert [(c.approved, c.amount_sum) for c in look.cells] == [(True, 5.0)]


async def test_two_writers_racing_on_the_same_new_ids_log_them_once(postgres_url: str) -> None:
    """The loser's insert waits on the winner's unique key, then starts over and finds them."""
    import asyncio

    from decisions.store import _append, _unique

    engine = make_engine(postgres_url)
    create_decision_tables(engine)
    with engine.begin() as connection:
        connection.execute(ROLLUPS.delete())
        connection.execute(DECISIONS.delete())
    records = [record(n) for n in range(5)]
    with Session(engine) as winner:
        assert _append(winner.connection(), _unique(records)) == 5  # not committed yet
        with Session(engine) as loser:
            racing = asyncio.create_task(asyncio.to_thread(append, loser, records))
            await asyncio.sleep(0.5)  # the loser is now waiting on the winner's rows
            winner.commit()
            assert await racing == 0
    assert counts(engine) == (5, 5)
    engine.dispose()


def test_times_are_stored_as_sqlalchemy_compares_them(engine: Engine) -> None:
    """A decision at a whole second is found by a query on ``at`` starting there (the bulk
    writer applies the dialect's own processor: SQLite compares times as text)."""
    with Session(engine) as session:
        append(session, [record(0, at=T0), record(1, at=T0 + timedelta(microseconds=1))])
    with engine.connect() as connection:
        found = connection.execute(
            select(func.count()).select_from(DECISIONS).where(DECISIONS.c.at >= T0)
        ).scalar_one()
        exact = connection.execute(select(DECISIONS.c.at).where(DECISIONS.c.decision_id == "d0"))
    assert found == 2
    assert exact.scalar_one() == T0


def test_a_batch_of_new_decisions_is_written_without_looking_first(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver's row count tells that nothing was skipped (SQLite and psycopg sum it
    over executemany); only a batch with known ids pays for looking them up."""
    import decisions.store as store

    careful: list[int] = []
    original = store._append

    def counted(connection: object, rows: list[tuple[int, dict[str, object]]]) -> int:
        careful.append(len(rows))
        return original(connection, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_append", counted)
    with Session(engine) as session:
        assert append(session, [record(n) for n in range(30)]) == 30
        assert careful == []
        assert append(session, [record(n) for n in range(25, 40)]) == 10
    assert careful == [15]
    assert counts(engine) == (40, 40)

"""Reading an incident's trail a page at a time: keyset pages by sequence number that
tile the trail with no gap or overlap, and a search that pages the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audit.browse import TrailPage, TrailSearch, read_page, records_of_kind
from audit.trail import AuditTrail
from contracts.audit import AuditEvent

INCIDENT = "inc-pages"
START = datetime(2026, 1, 1, tzinfo=UTC)


def _event(i: int, incident: str = INCIDENT, kind: str = "activity.completed") -> AuditEvent:
    return AuditEvent(
        event_id=f"{incident}:{i}",
        incident_id=incident,
        kind=kind,
        actor="lee" if i % 10 == 0 else "fairlane",
        step="canary",
        detail={"activity": "read_decisions", "n": i, "note": "100% ok_" if i == 7 else ""},
        at=START + timedelta(minutes=i),
    )


@pytest.fixture
def filled(trail: AuditTrail) -> AuditTrail:
    """45 records of this incident (every fifth a canary look), interleaved with another's."""
    events = []
    for i in range(45):
        events.append(_event(i, kind="canary.analysis" if i % 5 == 4 else "activity.completed"))
        events.append(_event(i, incident="inc-other"))
    trail.append_many(events)
    return trail


def _ns(page: TrailPage) -> list[int]:
    return [int(r.detail.split('"n":')[1].split(",")[0]) for r in page.records]


def test_the_first_page_is_the_newest_and_pages_tile_the_trail(filled: AuditTrail) -> None:
    engine = filled.engine
    newest = read_page(engine, INCIDENT, size=20)
    assert _ns(newest) == list(range(25, 45)) and newest.matching == 45
    assert newest.newer_after is None and newest.older_before == newest.records[0].seq

    middle = read_page(engine, INCIDENT, before=newest.older_before, size=20)
    assert _ns(middle) == list(range(5, 25))
    oldest = read_page(engine, INCIDENT, before=middle.older_before, size=20)
    assert _ns(oldest) == list(range(5)) and oldest.older_before is None
    assert oldest.newer_after == oldest.records[-1].seq

    forward = read_page(engine, INCIDENT, after=oldest.newer_after, size=20)
    assert _ns(forward) == list(range(5, 25))
    assert forward.older_before == forward.records[0].seq
    assert forward.newer_after == forward.records[-1].seq
    last = read_page(engine, INCIDENT, after=forward.newer_after, size=20)
    assert _ns(last) == list(range(25, 45)) and last.newer_after is None


def test_a_page_stays_put_while_new_records_arrive(filled: AuditTrail) -> None:
    before = read_page(filled.engine, INCIDENT, size=20).older_before
    assert before is not None
    page = read_page(filled.engine, INCIDENT, before=before, size=20)
    filled.append_many([_event(i) for i in range(100, 130)])
    again = read_page(filled.engine, INCIDENT, before=before, size=20)
    assert _ns(again) == _ns(page)
    assert read_page(filled.engine, INCIDENT, size=20).matching == 75


def test_hidden_kinds_and_searches_narrow_and_page_the_same_way(filled: AuditTrail) -> None:
    engine = filled.engine
    timeline = read_page(engine, INCIDENT, TrailSearch(hidden_kinds=frozenset({"canary.analysis"})))
    assert timeline.matching == 36 and all(r.kind != "canary.analysis" for r in timeline.records)

    by_actor = read_page(engine, INCIDENT, TrailSearch(actor="lee"), size=2)
    assert _ns(by_actor) == [30, 40] and by_actor.matching == 5
    older = read_page(engine, INCIDENT, TrailSearch(actor="lee"), before=by_actor.older_before)
    assert _ns(older) == [0, 10, 20] and older.newer_after is not None

    assert read_page(engine, INCIDENT, TrailSearch(kind="canary")).matching == 9
    assert read_page(engine, INCIDENT, TrailSearch(kind="analysis")).matching == 0  # a prefix
    assert read_page(engine, INCIDENT, TrailSearch(text="LEE")).matching == 5  # any case
    # LIKE's wildcards in a search are the characters themselves.
    assert _ns(read_page(engine, INCIDENT, TrailSearch(text="100% ok_"))) == [7]
    assert read_page(engine, INCIDENT, TrailSearch(text="%")).matching == 1
    assert read_page(engine, "inc-none").records == []


def test_a_page_cannot_start_both_before_and_after(filled: AuditTrail) -> None:
    with pytest.raises(ValueError, match="not both"):
        read_page(filled.engine, INCIDENT, before=5, after=2)


def test_the_canary_looks_are_read_on_their_own(filled: AuditTrail) -> None:
    looks = records_of_kind(filled.engine, INCIDENT, "canary.analysis")
    assert len(looks) == 9 and [r.seq for r in looks] == sorted(r.seq for r in looks)

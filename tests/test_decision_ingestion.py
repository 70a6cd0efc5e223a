"""Decisions and outcomes reported to Fairlane's API: validated, all or nothing, idempotent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from api.app import create_app
from api.decisions import DECISIONS_REPORTED, OUTCOMES_REPORTED
from api.tokens import Role, issue_token
from audit.configure import open_trail
from config import Settings
from contracts.metrics import Side
from contracts.model import DecisionSource
from contracts.watch import watch_workflow_id
from decisions.store import window
from decisions.tables import DECISIONS, ROLLUPS
from registry.service import ModelRegistry
from stack.loopback import free_port
from store.db import create_tables, make_engine
from tests.fixtures.decisions import MODEL, T0, hiring_manifest, reported
from tests.fixtures.services import serve

PEOPLE = {
    "scorer": [Role.DECISION_REPORTER],
    "ic": [Role.INCIDENT_COMMANDER],
    "auditor": [Role.AUDITOR],
    "admin": [Role.ADMIN],
}
DECISIONS_URL = f"/v1/models/{MODEL}/decisions"
OUTCOMES_URL = f"/v1/models/{MODEL}/outcomes"


@dataclass
class Served:
    client: httpx.Client
    settings: Settings
    tokens: dict[str, str]

    def post(self, url: str, body: Any, who: str | None = "scorer") -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.post(url, json=body, headers=headers)

    def stored(self) -> tuple[int, int]:
        """Decisions logged, and decisions the rollups count."""
        engine = make_engine(self.settings.resolved_database_url)
        with engine.connect() as connection:
            rows = connection.execute(select(func.count()).select_from(DECISIONS)).scalar_one()
            rolled = connection.execute(select(func.sum(ROLLUPS.c.count))).scalar_one()
        engine.dispose()
        return rows, int(rolled or 0)

    def events(self, kind: str) -> list[Any]:
        engine = make_engine(self.settings.resolved_database_url)
        trail = open_trail(engine, self.settings)
        return [r for r in trail.records(watch_workflow_id(MODEL)) if r.kind == kind]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Served]:
    settings = Settings(data_dir=tmp_path, decision_batch_max=50)
    engine = make_engine(settings.resolved_database_url)
    create_tables(engine)
    registry = ModelRegistry(engine)
    registry.register(hiring_manifest(), "admin")
    registry.register(
        hiring_manifest().model_copy(
            update={"id": "gated", "decisions": DecisionSource(kind="gateway")}
        ),
        "admin",
    )
    tokens = {who: issue_token(settings.resolved_tokens_file, who, r) for who, r in PEOPLE.items()}
    with (
        serve(create_app(settings), free_port()) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield Served(client, settings, tokens)


def batch(*decisions: dict[str, Any]) -> dict[str, Any]:
    return {"decisions": list(decisions)}


def problem(response: httpx.Response) -> dict[str, Any]:
    [detail] = response.json()["detail"]
    assert isinstance(detail, dict)
    return detail


def test_a_batch_is_logged_and_rolled_up_into_the_manifests_cells(api: Served) -> None:
    decisions = [reported(n) for n in range(1, 21)]
    decisions.append(reported(21, served_by="candidate", version="v2"))
    answer = api.post(DECISIONS_URL, batch(*decisions))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"decisions": 21, "written": 21, "already_logged": 0}
    assert api.stored() == (21, 21)

    engine = make_engine(api.settings.resolved_database_url)
    with Session(engine) as session:
        look = window(session, MODEL, "v2", T0, T0 + timedelta(minutes=1))
    assert look.decisions == 21
    groups = {cell.group for cell in look.cells}
    assert "race=black|sex=m" in groups and all(g.startswith("race=") for g in groups)
    strata = {cell.stratum for cell in look.cells}
    assert strata <= {"junior|north", "junior|south", "senior|north", "senior|south"}
    assert [c.group for c in look.cells if c.side is Side.CANDIDATE] == ["race=black|sex=m"]

    [event] = api.events(DECISIONS_REPORTED)
    assert event.actor == "scorer"
    detail = json.loads(event.detail)
    assert (detail["decisions"], detail["written"], detail["roles"]) == (
        21,
        21,
        ["decision_reporter"],
    )


def test_a_resent_batch_changes_nothing(api: Served) -> None:
    body = batch(*(reported(n) for n in range(10)))
    assert api.post(DECISIONS_URL, body).json()["written"] == 10
    again = api.post(DECISIONS_URL, body)
    assert again.status_code == 200
    assert again.json() == {"decisions": 10, "written": 0, "already_logged": 10}
    assert api.stored() == (10, 10)
    assert len(api.events(DECISIONS_REPORTED)) == 1  # the same batch is on the trail once


def test_an_unknown_group_refuses_the_whole_batch_naming_the_record(api: Served) -> None:
    bad = reported(2)
    bad["values"]["race"] = "martian"
    answer = api.post(DECISIONS_URL, batch(reported(1), bad, reported(3)))
    assert answer.status_code == 422
    assert problem(answer)["loc"] == ["body", "decisions", 1, "values", "race"]
    assert "martian" in problem(answer)["msg"]
    assert api.stored() == (0, 0)
    assert api.events(DECISIONS_REPORTED) == []


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"at": "yesterday"}, ["body", "decisions", 1, "at"]),
        ({"at": "2026-03-01T12:00:00"}, ["body", "decisions", 1, "at"]),  # naive: ambiguous
        ({"served_by": "shadow"}, ["body", "decisions", 1, "served_by"]),
        ({"decision": None}, ["body", "decisions", 1, "decision"]),  # the manifest declares it
        ({"amount": 5.0}, ["body", "decisions", 1, "amount"]),  # it declares no amount
        ({"version": "v9"}, ["body", "decisions", 1, "version"]),
        ({"colour": "red"}, ["body", "decisions", 1, "colour"]),
        ({"values": {"race": "asian", "sex": "f", "region": "x"}},
         ["body", "decisions", 1, "values", "years_experience"]),
        ({"values": {"race": "asian", "sex": "f", "region": "x", "years_experience": "lots"}},
         ["body", "decisions", 1, "values", "years_experience"]),
        ({"values": {"race": "asian", "years_experience": 3, "region": "x"}},
         ["body", "decisions", 1, "values", "sex"]),
        ({"decision_id": ""}, ["body", "decisions", 1, "decision_id"]),
    ],
)  # fmt: skip
def test_a_malformed_record_refuses_the_whole_batch(
    api: Served, change: dict[str, Any], loc: list[Any]
) -> None:
    answer = api.post(DECISIONS_URL, batch(reported(1), reported(2, **change), reported(3)))
    assert answer.status_code == 422, answer.text
    assert problem(answer)["loc"][: len(loc)] == loc
    assert api.stored() == (0, 0)


def test_a_different_record_under_a_logged_id_is_a_conflict_and_nothing_is_written(
    api: Served,
) -> None:
    assert api.post(DECISIONS_URL, batch(reported(1))).status_code == 200
    answer = api.post(DECISIONS_URL, batch(reported(5), reported(1, decision=False)))
    assert answer.status_code == 409
    assert problem(answer)["loc"] == ["body", "decisions", 1, "decision"]
    assert "'app-1'" in problem(answer)["msg"]
    assert api.stored() == (1, 1)


def test_a_batch_over_the_limit_is_refused(api: Served) -> None:
    answer = api.post(DECISIONS_URL, batch(*(reported(n) for n in range(51))))
    assert answer.status_code == 422
    assert problem(answer)["loc"] == ["body", "decisions"]
    assert api.stored() == (0, 0)


@pytest.mark.parametrize("who", ["ic", "auditor", "admin"])
def test_only_decision_reporters_may_report(api: Served, who: str) -> None:
    assert api.post(DECISIONS_URL, batch(reported(1)), who=who).status_code == 403
    assert (
        api.post(
            OUTCOMES_URL, {"outcomes": [{"decision_id": "x", "outcome": True}]}, who=who
        ).status_code
        == 403
    )
    assert api.stored() == (0, 0)


def test_an_unauthenticated_report_is_refused(api: Served) -> None:
    assert api.post(DECISIONS_URL, batch(reported(1)), who=None).status_code == 401
    forged = api.client.post(
        DECISIONS_URL, json=batch(reported(1)), headers={"Authorization": "Bearer not-a-token"}
    )
    assert forged.status_code == 401
    assert api.stored() == (0, 0)


def test_reports_need_a_registered_model_whose_source_is_ingest(api: Served) -> None:
    assert api.post("/v1/models/nobody/decisions", batch(reported(1))).status_code == 404
    gated = api.post("/v1/models/gated/decisions", batch(reported(1)))
    assert gated.status_code == 409
    assert "'gateway'" in gated.json()["detail"]
    assert api.stored() == (0, 0)


def test_outcomes_are_recorded_once_and_final(api: Served) -> None:
    api.post(DECISIONS_URL, batch(*(reported(n) for n in range(1, 6))))
    outcomes = {
        "outcomes": [
            {"decision_id": "app-1", "outcome": True},
            {"decision_id": "app-2", "outcome": False},
        ]
    }
    first = api.post(OUTCOMES_URL, outcomes)
    assert first.status_code == 200, first.text
    assert first.json() == {"outcomes": 2, "recorded": 2, "already_recorded": 0}
    assert api.post(OUTCOMES_URL, outcomes).json()["already_recorded"] == 2

    unknown = api.post(
        OUTCOMES_URL,
        {
            "outcomes": [
                {"decision_id": "app-3", "outcome": True},
                {"decision_id": "nope", "outcome": True},
            ]
        },
    )
    assert unknown.status_code == 422
    assert problem(unknown)["loc"] == ["body", "outcomes", 1, "decision_id"]
    contradicted = api.post(
        OUTCOMES_URL, {"outcomes": [{"decision_id": "app-1", "outcome": False}]}
    )
    assert contradicted.status_code == 409
    assert problem(contradicted)["loc"] == ["body", "outcomes", 0, "outcome"]

    engine = make_engine(api.settings.resolved_database_url)
    with Session(engine) as session:
        look = window(session, MODEL, "v2", T0, T0 + timedelta(minutes=1))
    known = {c.outcome: c.count for c in look.cells if c.outcome is not None}
    assert sum(known.values()) == 2  # app-3 was not recorded: all or nothing
    assert len(api.events(OUTCOMES_REPORTED)) == 1


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"decisions": []}', b'{"decisions": 3}'])
def test_a_body_that_is_no_batch_is_a_422(api: Served, body: bytes) -> None:
    answer = api.client.post(
        DECISIONS_URL,
        content=body,
        headers={
            "Authorization": f"Bearer {api.tokens['scorer']}",
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][0] == "body"
    assert api.stored() == (0, 0)

"""The SQL decision source: a team's own table, aggregated by SQLite and by Postgres."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlmodel import Session

from config import Settings
from config.databases import DecisionDatabase
from contracts.model import DecisionSource, ModelManifest
from contracts.targets import RouterRef
from decisions.records import DecisionRecord
from decisions.store import append, window
from decisions.tables import create_decision_tables
from metrics.databases import DecisionDatabases, UnknownDatabase
from metrics.provider import ProviderError
from metrics.sql import SqlDecisionsProvider, window_query
from store.db import make_engine
from tests.fixtures.decisions import MODEL, RACES, SEXES, T0, hiring_manifest

GATEWAY_REF = RouterRef(target="gateway")
COLUMNS = {
    "decision_id": "app_id",
    "at": "decided_at",
    "version": "model_version",
    "served_by": "route",
    "shadow": "is_shadow",
    "race": "select",  # a reserved word: identifiers must be quoted by the dialect
    "years_experience": "YearsExp",  # mixed case: quoted too
    "decision": "hired",
    "outcome": "good_hire",
}


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(declared URL, table name) of a fresh team table."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'team.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    yield url, f"hires_{uuid.uuid4().hex[:8]}"


def team_table(name: str) -> Table:
    return Table(
        name,
        MetaData(),
        Column("app_id", String, primary_key=True),
        Column("decided_at", DateTime(timezone=True)),
        Column("model_version", String),
        Column("route", String),
        Column("is_shadow", Boolean),
        Column("select", String),
        Column("sex", String),
        Column("YearsExp", Float, nullable=True),
        Column("region", String),
        Column("hired", Boolean),
        Column("good_hire", Boolean, nullable=True),
        Column("unrelated", Integer),
    )


def rows(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    made = []
    for i in range(n):
        route = rng.choice(["primary", "primary", "fallback", "candidate", "candidate"])
        version = {"primary": "v1", "fallback": "rules"}.get(route) or rng.choice(
            ["v2", "v2", "v3"]
        )
        made.append(
            {
                "app_id": f"a{i}",
                # naive UTC on SQLite (what SQLAlchemy writes there), aware on Postgres
                "decided_at": T0 + timedelta(seconds=rng.uniform(0, 600)),
                "model_version": version,
                "route": route,
                "is_shadow": rng.random() < 0.1,
                "select": rng.choice(RACES),
                "sex": rng.choice(SEXES),
                "YearsExp": rng.choice([0.0, 2.5, 4.99, 5.0, 12.0]),
                "region": rng.choice(["north", "south"]),
                "hired": rng.random() < 0.6,
                "good_hire": rng.choice([True, False, None]),
                "unrelated": i,
            }
        )
    return made


def manifest(table: str) -> ModelManifest:
    return hiring_manifest(
        DecisionSource(kind="sql", database="team", table=table, columns=COLUMNS)
    )


def as_records(made: list[dict[str, Any]], model: ModelManifest) -> list[DecisionRecord]:
    """The same decisions as the gateway would log them (group_of / stratum_of)."""
    records = []
    for row in made:
        values = {
            "race": row["select"],
            "sex": row["sex"],
            "years_experience": row["YearsExp"],
            "region": row["region"],
        }
        records.append(
            DecisionRecord(
                decision_id=row["app_id"],
                model=MODEL,
                version=row["model_version"],
                served_by=row["route"],
                shadow=row["is_shadow"],
                at=row["decided_at"],
                group=model.group_of(values),
                stratum=model.stratum_of(values),
                decision=row["hired"],
            )
        )
    return records


def filled(url: str, name: str, made: list[dict[str, Any]]) -> Engine:
    engine = make_engine(url)
    table = team_table(name)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), made)
    return engine


def cells(window_: Any) -> dict[tuple[Any, ...], tuple[int, float]]:
    return {
        (c.side, c.group, c.stratum, c.approved, c.outcome): (c.count, c.amount_sum)
        for c in window_.cells
    }


async def test_the_database_sums_the_same_cells_the_decision_log_does(
    database: tuple[str, str], tmp_path: Path
) -> None:
    url, name = database
    made = rows(400)
    engine = filled(url, name, made)
    model = manifest(name)
    databases = DecisionDatabases({"team": DecisionDatabase(url=url)})
    provider = SqlDecisionsProvider(databases.engine("team"), model)
    since, until = T0, T0 + timedelta(minutes=10)

    from_sql = await provider.window(GATEWAY_REF, MODEL, "v2", since, until)

    log = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    create_decision_tables(log)
    with Session(log) as session:
        append(session, as_records(made, model))
        # outcomes are not in the log here: compare decisions, outcome aside
        from_log = window(session, MODEL, "v2", since, until)
    merged: dict[tuple[Any, ...], int] = {}
    for (side, group, stratum, approved, _), (count, _) in cells(from_sql).items():
        key = (side, group, stratum, approved)
        merged[key] = merged.get(key, 0) + count
    assert merged == {(c.side, c.group, c.stratum, c.approved): c.count for c in from_log.cells}
    assert from_sql.provider == "sql"
    assert from_sql.decisions == from_log.decisions > 200
    assert any(c.outcome is not None for c in from_sql.cells)  # outcomes joined by the table
    assert {c.stratum.split("|")[0] for c in from_sql.cells} == {"junior", "senior"}
    engine.dispose()
    databases.dispose()


async def test_window_edges_are_exact(database: tuple[str, str]) -> None:
    url, name = database
    made = rows(50)
    for i, row in enumerate(made):
        row.update(route="primary", model_version="v1", is_shadow=False)
        row["decided_at"] = T0 + timedelta(seconds=i)
    filled(url, name, made).dispose()
    databases = DecisionDatabases({"team": DecisionDatabase(url=url)})
    provider = SqlDecisionsProvider(databases.engine("team"), manifest(name))
    look = await provider.window(
        GATEWAY_REF, MODEL, "v2", T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)
    )
    assert look.decisions == 10
    databases.dispose()


def test_identifiers_are_quoted_never_formatted(database: tuple[str, str]) -> None:
    url, name = database
    engine = make_engine(url)
    sql = str(window_query(manifest(name), manifest(name).decisions, "v2", T0, T0).compile(engine))
    assert '"select"' in sql and '"YearsExp"' in sql
    engine.dispose()


async def test_a_missing_column_is_a_provider_error_naming_the_source(
    database: tuple[str, str],
) -> None:
    url, name = database
    filled(url, name, rows(5)).dispose()
    broken = hiring_manifest(
        DecisionSource(
            kind="sql", database="team", table=name, columns={**COLUMNS, "sex": "gender"}
        )
    )
    databases = DecisionDatabases({"team": DecisionDatabase(url=url)})
    with pytest.raises(ProviderError, match=f"'team'.*{name}"):
        await SqlDecisionsProvider(databases.engine("team"), broken).window(
            GATEWAY_REF, MODEL, "v2", T0, T0 + timedelta(minutes=1)
        )
    databases.dispose()


def test_only_declared_databases_open_and_passwords_never_show(
    postgres_url: str, tmp_path: Path
) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("file-pass-123\n")
    declared = {
        "team": DecisionDatabase(url=postgres_url, password=SecretStr("inline-pass-456")),
        "other": DecisionDatabase(url=postgres_url, password_file=password_file),
    }
    databases = DecisionDatabases(declared)
    with pytest.raises(UnknownDatabase, match="'elsewhere' is not declared"):
        databases.engine("elsewhere")
    for database_id, secret in (("team", "inline-pass-456"), ("other", "file-pass-123")):
        engine = databases.engine(database_id)
        assert engine.url.password == secret  # it reaches the engine...
        assert secret not in repr(engine) and secret not in repr(databases)  # ...and no print
        assert secret not in repr(declared[database_id])
        with engine.connect() as connection:  # the test server trusts any password
            assert connection.exec_driver_sql("select 1").scalar_one() == 1
    databases.dispose()


def test_a_password_inside_a_declared_url_is_refused() -> None:
    with pytest.raises(ValidationError, match="not inside the URL"):
        DecisionDatabase(url="postgresql://reader:hunter2@db/sales")
    with pytest.raises(ValidationError, match="lower-case slug"):
        Settings(decision_databases={"Bad Id": {"url": "sqlite:///x.db"}})

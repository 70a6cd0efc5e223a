"""Each model's live analysis reads the decision source its manifest declares."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.exceptions import ApplicationError

from activities.canary import CanaryActivities
from config import Settings
from config.databases import DecisionDatabase
from contracts.canary import AnalysisRequest
from contracts.model import DecisionSource
from contracts.routing import Serving
from contracts.targets import RouterRef
from decisions.records import DecisionRecord
from decisions.store import append
from fairness.live import LiveThresholds
from metrics.provider import ProviderError, UndeclaredSource
from metrics.sources import DeclaredSourceProvider
from registry.service import ModelRegistry
from stack.worker import metrics_providers
from store.db import create_tables, make_engine
from tests.fixtures.decisions import T0, hiring_manifest
from tests.test_sql_decisions import filled, rows

GATEWAY_REF = RouterRef(target="gateway")
SINCE, UNTIL = T0, T0 + timedelta(minutes=15)


@pytest.fixture
def fairlane(tmp_path: Path) -> Iterator[tuple[Settings, Engine, ModelRegistry]]:
    team_url = f"sqlite:///{tmp_path / 'team.db'}"
    settings = Settings(
        data_dir=tmp_path,
        router_token="t",
        decision_databases={"team": DecisionDatabase(url=team_url)},
        prometheus_servers={"ops": "http://127.0.0.1:1"},
    )
    engine = make_engine(settings.resolved_database_url)
    create_tables(engine)
    registry = ModelRegistry(engine)
    sql = DecisionSource(
        kind="sql",
        database="team",
        table="hires",
        columns={"at": "decided_at", "race": "select", "years_experience": "YearsExp",
                 "decision": "hired", "version": "model_version", "served_by": "route"},
    )  # fmt: skip
    for model_id, source in (
        ("reported", DecisionSource(kind="ingest")),
        ("gated", DecisionSource(kind="gateway")),
        ("tabled", sql),
        ("lost-db", sql.model_copy(update={"database": "nowhere"})),
        ("lost-prom", DecisionSource(kind="prometheus", server="elsewhere")),
    ):
        manifest = hiring_manifest(source).model_copy(update={"id": model_id})
        registry.register(manifest, "admin")
    filled(team_url, "hires", rows(120)).dispose()
    yield settings, engine, registry
    engine.dispose()


def providers(fairlane: tuple[Settings, Engine, ModelRegistry]) -> dict[str, object]:
    settings, engine, registry = fairlane
    return dict(metrics_providers(settings, settings.target_resolver(), registry, engine))


async def test_the_default_name_reads_each_models_declared_source(
    fairlane: tuple[Settings, Engine, ModelRegistry],
) -> None:
    _, engine, _ = fairlane
    configured = providers(fairlane)
    declared = configured["decision_log"]
    assert isinstance(declared, DeclaredSourceProvider)
    assert configured["manifest"] is declared
    with Session(engine) as session:
        append(
            session,
            [
                DecisionRecord(
                    decision_id=f"d{i}", model="reported", version="v1",
                    served_by=Serving.PRIMARY, at=T0 + timedelta(seconds=i),
                    group="race=asian|sex=f", stratum="junior|north", decision=True,
                )
                for i in range(7)
            ],
        )  # fmt: skip

    reported = await declared.window(GATEWAY_REF, "reported", "v2", SINCE, UNTIL)
    assert (reported.provider, reported.decisions) == ("ingest", 7)
    tabled = await declared.window(GATEWAY_REF, "tabled", "v2", SINCE, UNTIL)
    assert tabled.provider == "sql" and tabled.decisions > 30
    gated = hiring_manifest(DecisionSource(kind="gateway"))
    assert declared.for_manifest(gated) is configured["gateway"]  # what it read before


async def test_an_undeclared_source_or_model_is_refused(
    fairlane: tuple[Settings, Engine, ModelRegistry],
) -> None:
    declared = providers(fairlane)["decision_log"]
    assert isinstance(declared, DeclaredSourceProvider)
    with pytest.raises(UndeclaredSource, match="'nowhere' is not declared"):
        await declared.window(GATEWAY_REF, "lost-db", "v2", SINCE, UNTIL)
    with pytest.raises(UndeclaredSource, match="'elsewhere' is not declared"):
        await declared.window(GATEWAY_REF, "lost-prom", "v2", SINCE, UNTIL)
    with pytest.raises(ProviderError, match="not registered"):
        await declared.window(GATEWAY_REF, "nobody", "v2", SINCE, UNTIL)


async def test_the_canary_fails_for_good_on_an_undeclared_source(
    fairlane: tuple[Settings, Engine, ModelRegistry],
) -> None:
    activities = CanaryActivities(providers(fairlane))  # type: ignore[arg-type]
    request = AnalysisRequest(
        target="gateway", incident_id="inc-1", model="lost-db", provider="decision_log",
        candidate_version="v2", since=SINCE, until=UNTIL, look=1, alpha=0.05,
        thresholds=LiveThresholds(),
    )  # fmt: skip
    with pytest.raises(ApplicationError) as failed:
        await activities.canary_analysis(request)
    assert failed.value.type == "UndeclaredDecisionSource" and failed.value.non_retryable
    analysed = await activities.canary_analysis(request.model_copy(update={"model": "tabled"}))
    assert analysed.provider == "sql" and analysed.decisions > 30


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"salary": "pay"}, "decisions.columns.salary"),
        ({"at": "a; drop table"}, "pattern"),
    ],
)
def test_a_column_mapping_the_manifest_cannot_have_is_refused(
    columns: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        hiring_manifest(DecisionSource(kind="sql", database="team", table="t", columns=columns))


@pytest.mark.parametrize(
    ("labels", "message"),
    [({"cohort": "group"}, "labels.cohort"), ({"group": "bad-label"}, "labels.group")],
)
def test_a_label_mapping_outside_the_convention_is_refused(
    labels: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DecisionSource(kind="prometheus", server="ops", labels=labels)

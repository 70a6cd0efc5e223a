"""The drift monitor (and the report's fallback window) read the reference router's
decision log for a model with no candidate ramping: the window query names no version
(an empty candidate was refused by the log's query model, so every look failed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.monitor import MonitorActivities
from config import Settings
from contracts.monitoring import EvaluationRequest
from demo.dataset import generate_applicants
from demo.scenario import applicant_from
from registry.service import ModelRegistry
from stack.worker import metrics_providers
from store.db import create_tables, make_engine
from tests.fixtures.incidents import manifest_for
from tests.fixtures.services import RouterService


async def test_a_monitor_look_reads_the_gateways_log_of_a_model_without_a_canary(
    router_service: RouterService, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path, router_url=router_service.url, router_token=router_service.token
    )
    engine = make_engine(settings.resolved_database_url)
    create_tables(engine)
    manifest = manifest_for(router_service)  # decisions: the gateway's log (the default)
    ModelRegistry(engine).register(manifest, "test")
    monitor = MonitorActivities(
        metrics_providers(settings, settings.target_resolver(), ModelRegistry(engine), engine)
    )
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with router_service.client() as router:
        for i, row in enumerate(generate_applicants(40, 5).itertuples(index=False)):
            await router.decide(router_service.model, applicant_from(row, f"mon-{i}"))
    request = EvaluationRequest(
        target="gateway",
        model=router_service.model,
        since=since,
        until=datetime.now(UTC) + timedelta(seconds=1),
        policy=manifest.monitoring,
    )

    result = await ActivityEnvironment().run(monitor.evaluate_monitor_window, request)

    evaluation = result.evaluation
    assert evaluation.decisions >= 40  # the log counts whole minutes
    assert sum(evaluation.fairness.samples["candidate"].values()) == evaluation.decisions
    engine.dispose()

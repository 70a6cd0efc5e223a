"""A service on the OpenFeature SDK really follows the route Fairlane writes to its flag file.

The service here is written as a team would write it: the real OpenFeature Python SDK
with the real flagd provider in in-process file mode, reading the very file a declared
``flagd-file`` target names, and asking for ``fairlane.route.<model>`` with the
request's stable key as the targeting key. Fairlane writes that file through the real
routing activities; the containment runs through the real incident workflow on the
time-skipping server. The provider polls the file, so every wait for it is bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from math import sqrt
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationDetails
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.routing import RoutingActivities
from audit.trail import AuditTrail
from config import Settings
from config.targets import FlagdFileTarget, ResolvedFlagFile, TargetResolver
from contracts.incident import IncidentInput, IncidentState, Phase
from contracts.model import ModelManifest, ModelVersion, Outcomes, RouterRef
from contracts.routing import RouteUpdate, Serving
from contracts.severity import Severity
from contracts.steps import ReadRouteInput, SetRouteInput, TargetRoute
from playbooks.loader import load_playbook_text
from stack.worker import build_worker
from targets.flag_file import FlagFileTarget
from targets.flagd_flag import flag_key
from tests.fixtures.incidents import (
    TEST_DECISION_MAX_AGE_S,
    TEST_DECISION_PUBLIC,
    TEST_SIGNER,
    start_incident,
)

pytestmark = pytest.mark.integration

FLAGS = "team-flags"
MODEL = "hiring-screen"
FLAG = flag_key(MODEL)
POLL_MS = 50
"""How often the provider looks at the file's mtime (its file mode polls)."""
WAIT_S = 15.0
KEYS = [f"applicant-{i:05d}" for i in range(2000)]
TEAM_FLAG = {
    "state": "ENABLED",
    "variants": {"on": True, "off": False},
    "defaultVariant": "off",
    "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", None]},
}
CONTAIN = """
name: contain-flag
version: "1"
steps:
  - name: contain
    kind: route
    serving: fallback
    retry: {maximum_attempts: 3, initial_interval: 100ms, maximum_interval: 200ms}
    timeouts: {start_to_close: 5s, schedule_to_close: 30s}
    on_failure: {action: escalate}
  - {name: told, kind: notify, message: "{model} contained"}
"""


class RoutedService:
    """The team's service: asks the flag who answers each request, and falls back to the
    rules when the flag cannot be read (the default value)."""

    def __init__(self, flag_file: Path) -> None:
        self.domain = f"service-{uuid.uuid4().hex[:8]}"
        self.provider = FlagdProvider(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=str(flag_file),
            deadline_ms=POLL_MS,
        )
        api.set_provider_and_wait(self.provider, self.domain)
        self.client = api.get_client(self.domain)

    def route(self, key: str | None) -> FlagEvaluationDetails[Any]:
        context = EvaluationContext(targeting_key=key) if key else EvaluationContext()
        return self.client.get_object_details(FLAG, {"serving": "fallback"}, context)

    def serving(self, key: str | None) -> str:
        return str(self.route(key).value["serving"])

    def variants(self) -> dict[str, str]:
        return {key: self.serving(key) for key in KEYS}

    def wait_for_generation(self, generation: int) -> FlagEvaluationDetails[Any]:
        """The flag as the provider serves it once it has picked up ``generation``."""
        deadline = time.monotonic() + WAIT_S
        while True:
            details = self.route("probe")
            if details.flag_metadata.get("generation") == generation:
                return details
            if time.monotonic() > deadline:
                raise AssertionError(f"provider never served generation {generation}: {details}")
            time.sleep(POLL_MS / 1000)


def _seed(path: Path) -> None:
    """The team's flag file before Fairlane, and the model's first route (what
    `fairlane model deploy` writes at a flag target), generation 1, serving v1."""
    path.write_text(json.dumps({"flags": {"checkout.new-ui": TEAM_FLAG}}, indent=2))
    first = RouteUpdate(
        serving=Serving.PRIMARY, primary_version="v1", generation=1, updated_by="deploy"
    )
    asyncio.run(FlagFileTarget(ResolvedFlagFile(FLAGS, path)).set_route(MODEL, first))


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    _seed(path)
    return path


@pytest.fixture
def service(flag_file: Path) -> Iterator[RoutedService]:
    routed = RoutedService(flag_file)
    yield routed
    routed.provider.shutdown()


def _manifest() -> ModelManifest:
    return ModelManifest(
        id=MODEL,
        versions=[ModelVersion(version="v1", artifact=f"{MODEL}/v1.skops")],
        primary_version="v1",
        outcomes=Outcomes(decision="advance"),
        protected_attributes=["race", "sex"],
        router=RouterRef(target=FLAGS),
    )


async def test_containment_switches_the_service_to_its_fallback(
    time_env: WorkflowEnvironment, flag_file: Path, service: RoutedService, trail: AuditTrail
) -> None:
    assert {service.serving(key) for key in KEYS[:200]} == {"primary"}
    assert service.route("a").value == {"serving": "primary", "version": "v1"}
    queue = f"flag-contain-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        task_queue=queue,
        router_token=SecretStr("unused-gateway-token"),
        routing_targets={FLAGS: FlagdFileTarget(kind="flagd-file", path=flag_file)},
        decision_public_key=TEST_DECISION_PUBLIC,
        decision_max_age_s=TEST_DECISION_MAX_AGE_S,
    )
    incident = IncidentInput(
        incident_id=f"inc-flag-{uuid.uuid4().hex[:10]}",
        model=_manifest(),
        playbook=load_playbook_text(CONTAIN),
        severity=Severity.SEV1,
        summary="one group advanced at half the rate of the others at equal scores",
        commander="dana.ic",
        opened_at=datetime.now(UTC),
        decision_key=TEST_SIGNER.key,
    )
    async with build_worker(time_env.client, settings, trail):
        handle = await start_incident(time_env.client, incident, queue)
        final: IncidentState = await asyncio.wait_for(handle.result(), timeout=60)
    assert final.phase is Phase.RESOLVED and final.contained
    assert final.route_before is not None and final.route_before.serving is Serving.PRIMARY
    assert final.route_before.generation == 1  # read from the file: what a rollback restores
    assert final.route_now is not None and final.route_now.generation == 2

    details = await asyncio.to_thread(service.wait_for_generation, 2)
    assert details.variant == "fallback" and details.value == {"serving": "fallback"}
    assert details.flag_metadata["shadowVersions"] == "v1"  # the model keeps scoring in shadow
    assert details.flag_metadata["updatedBy"] == f"fairlane:{incident.incident_id}"
    served = await asyncio.to_thread(service.variants)
    assert set(served.values()) == {"fallback"}
    assert service.serving(None) == "fallback"
    staff = EvaluationContext(targeting_key="x", attributes={"email": "kim@example.com"})
    assert service.client.get_boolean_value("checkout.new-ui", False, staff) is True


def _within_binomial(count: int, n: int, percent: float) -> bool:
    """``count`` of ``n`` within 4.5 standard deviations of ``percent`` (a fixed hash,
    so this is not flaky; the width only says what "at the percentage" means)."""
    p = percent / 100
    return abs(count - n * p) <= 4.5 * sqrt(n * p * (1 - p))


async def _ramp(activities: RoutingActivities, percent: float) -> TargetRoute:
    """One ramp step as ``RouterPort.ensure`` does it: read, then set the next generation
    naming the revision read."""
    env = ActivityEnvironment()
    current: TargetRoute = await env.run(
        activities.read_route, ReadRouteInput(target=FLAGS, model=MODEL)
    )
    update = RouteUpdate(
        **current.spec().model_dump(exclude={"candidate_version", "canary_percent"}),
        candidate_version="v2",
        canary_percent=percent,
        generation=current.generation + 1,
        updated_by="fairlane:inc-canary",
        reason=f"canary: {percent:g}% of live traffic to v2",
    )
    written: TargetRoute = await env.run(
        activities.set_route,
        SetRouteInput(target=FLAGS, model=MODEL, update=update, expected_revision=current.revision),
    )
    return written


async def test_the_canary_splits_traffic_at_its_percentage_on_a_sticky_key(
    flag_file: Path, service: RoutedService
) -> None:
    activities = RoutingActivities(
        TargetResolver({FLAGS: FlagdFileTarget(kind="flagd-file", path=flag_file)})
    )
    shares: dict[float, set[str]] = {}
    for percent in (5.0, 25.0):
        written = await _ramp(activities, percent)
        await asyncio.to_thread(service.wait_for_generation, written.generation)
        served = await asyncio.to_thread(service.variants)
        again = await asyncio.to_thread(service.variants)
        assert again == served  # the same key always lands on the same side
        assert set(served.values()) == {"primary", "candidate"}
        candidates = {key for key, side in served.items() if side == "candidate"}
        assert _within_binomial(len(candidates), len(KEYS), percent), (percent, len(candidates))
        shares[percent] = candidates
        assert service.route(KEYS[0]).flag_metadata["canaryPercent"] == percent
        assert service.serving(None) == "primary"  # no key: what serves, never the candidate
    assert shares[5.0] <= shares[25.0]  # whoever was in the canary stays in it as it grows

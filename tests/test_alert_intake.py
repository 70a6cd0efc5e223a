"""Alert intake: real Alertmanager bodies and generic alerts, over HTTP, into Temporal.

The Alertmanager samples in ``fixtures/alertmanager/`` were captured from the real
binary (``scripts/capture-alertmanager-payloads.py``). The API runs against the real
dev server with no worker on its task queue, so every watch it starts simply holds
its signals; the tests read the watch's history and check that exactly the
normalised alerts arrived, by signal-with-start, one watch per model. What the
watch then makes of them (repeat, re-fire, one incident) is the watch's own tests'.
Each test registers fresh model ids, so histories never mix, and terminates the
watches it caused.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from alerts.alertmanager import AlertmanagerPayload
from alerts.generic import GenericAlert
from alerts.mapping import alerts_by_model
from alerts.problems import AlertRejected, parse_body
from alerts.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_legacy, signed_headers
from api.alerts import MAX_ALERTS_PER_SIGNAL
from api.app import create_app
from api.tokens import Role, issue_token
from config import Settings
from config.targets import GATEWAY
from contracts.alerts import AlertDelivery, AlertEvent, AlertSource, AlertStatus
from contracts.model import ModelManifest, ModelVersion, Outcomes, RouterRef
from contracts.monitoring import MonitoringPolicy
from contracts.severity import Severity
from contracts.watch import SIGNAL_ALERTS, WATCH_WORKFLOW, WatchInput, watch_workflow_id
from registry.service import ModelRegistry
from store.db import create_tables, make_engine
from tests.fixtures.incidents import DEMO_FEATURES
from tests.fixtures.services import free_port, serve

SAMPLES = Path(__file__).parent / "fixtures" / "alertmanager"
SAMPLE_MODELS = ("credit-limit", "mortgage-approval")
ROUTER_URL = "http://127.0.0.1:9"  # data only: no worker runs the watches here
HMAC_SECRET = "alert-hmac-secret-for-tests"
SECRET = SecretStr(HMAC_SECRET)
PEOPLE: dict[str, list[Role]] = {
    "alertmanager": [Role.ALERT_SOURCE],
    "ic": [Role.INCIDENT_COMMANDER],
    "auditor": [Role.AUDITOR],
}


def sample(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return body


def retarget(body: dict[str, Any], *models: str) -> dict[str, Any]:
    """A captured body with its sample models renamed to this test's fresh ones."""
    renamed = dict(zip(SAMPLE_MODELS, models, strict=False))
    body = copy.deepcopy(body)
    for labels in [body["commonLabels"], *(a["labels"] for a in body["alerts"])]:
        if "fairlane_model" in labels:
            labels["fairlane_model"] = renamed[labels["fairlane_model"]]
    return body


def manifest(model: str) -> ModelManifest:
    return ModelManifest(
        id=model,
        versions=[ModelVersion(version="v1", artifact="nonexistent/model.skops")],
        primary_version="v1",
        outcomes=Outcomes(decision="approved"),
        features=DEMO_FEATURES,
        protected_attributes=["group"],
        router=RouterRef(target=GATEWAY),
        monitoring=MonitoringPolicy(playbook="drift-rollback", severity=Severity.SEV1),
    )


def generic_alert(model: str) -> dict[str, Any]:
    return {"model": model, "name": "ApprovalGap", "starts_at": "2026-11-23T10:00:00Z"}


# --- the wire formats, without HTTP ------------------------------------------------------


def _events(name: str) -> list[AlertEvent]:
    payload = parse_body(AlertmanagerPayload, (SAMPLES / f"{name}.json").read_bytes())
    grouped = alerts_by_model(payload.alerts, ["fairlane_model"], manifest)
    return [event for group in grouped.values() for event in group.events]


def test_real_alertmanager_samples_normalise() -> None:
    [firing] = _events("firing")
    assert firing.model == "credit-limit" and firing.source is AlertSource.ALERTMANAGER
    assert firing.status is AlertStatus.FIRING and firing.ends_at is None  # Go's zero time
    assert firing.name == "FairnessDisparity"
    assert firing.fingerprint == sample("firing")["alerts"][0]["fingerprint"]
    assert firing.labels["severity"] == "critical"
    assert firing.summary.startswith("credit-limit: approval-rate gap")
    assert firing.generator_url and firing.generator_url.startswith("http://prometheus.example")

    [resolved] = _events("resolved")
    assert resolved.status is AlertStatus.RESOLVED
    assert (resolved.fingerprint, resolved.starts_at) == (firing.fingerprint, firing.starts_at)
    assert resolved.ends_at is not None and resolved.ends_at > resolved.starts_at

    [refired] = _events("refired")
    assert refired.status is AlertStatus.FIRING and refired.ends_at is None
    assert refired.fingerprint == firing.fingerprint and refired.starts_at > resolved.ends_at

    both = _events("group-partly-resolved")
    assert {(e.model, e.status) for e in both} == {
        ("credit-limit", AlertStatus.FIRING),
        ("mortgage-approval", AlertStatus.RESOLVED),
    }
    assert len({e.fingerprint for e in both}) == 2


def test_first_present_model_label_wins() -> None:
    body = sample("firing")
    body["alerts"][0]["labels"]["model"] = "mortgage-approval"
    payload = AlertmanagerPayload.model_validate(body)
    assert set(alerts_by_model(payload.alerts, ["model", "fairlane_model"], manifest)) == {
        "mortgage-approval"
    }
    assert set(alerts_by_model(payload.alerts, ["fairlane_model", "model"], manifest)) == {
        "credit-limit"
    }


def test_generic_fingerprint_is_stable_across_posts() -> None:
    def alert(**labels: str) -> GenericAlert:
        return GenericAlert.model_validate(
            {
                "model": "credit-limit",
                "name": "ApprovalGap",
                "starts_at": "2026-11-23T10:00:00Z",
                "labels": labels,
            }
        )

    assert alert(a="1", b="2").stable_fingerprint() == alert(b="2", a="1").stable_fingerprint()
    assert alert(a="1").stable_fingerprint() != alert(a="2").stable_fingerprint()
    own = GenericAlert.model_validate({**alert().model_dump(), "fingerprint": "mine"})
    assert own.to_event("credit-limit").fingerprint == "mine"


def test_a_problem_names_the_field_as_sent() -> None:
    body = sample("group-firing")
    body["alerts"][1]["startsAt"] = "yesterday"
    with pytest.raises(AlertRejected) as rejected:
        parse_body(AlertmanagerPayload, json.dumps(body).encode())
    [problem] = rejected.value.problems
    assert problem.field == "alerts[1].startsAt"
    assert problem.as_detail()["loc"] == ["body", "alerts", 1, "startsAt"]
    assert problem.as_detail()["message"].startswith("alerts[1].startsAt: Input should be")


# --- over HTTP, into Temporal ----------------------------------------------------------


@dataclass
class Intake:
    url: str
    tokens: dict[str, str]
    temporal: Client
    registry: ModelRegistry

    def headers(self, who: str = "alertmanager") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)


@pytest.fixture(scope="module")
def intake_settings(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("alert-intake"),
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=f"alerts-{uuid.uuid4().hex[:6]}",  # no worker polls it
    )


@pytest.fixture(scope="module")
def tokens(intake_settings: Settings) -> dict[str, str]:
    path = intake_settings.resolved_tokens_file
    return {who: issue_token(path, who, roles) for who, roles in PEOPLE.items()}


@pytest.fixture(scope="module")
def registry(intake_settings: Settings) -> ModelRegistry:
    engine = make_engine(intake_settings.resolved_database_url)
    create_tables(engine)
    return ModelRegistry(engine)


@contextmanager
def _intake(
    settings: Settings,
    dev_env: WorkflowEnvironment,
    tokens: dict[str, str],
    registry: ModelRegistry,
) -> Iterator[Intake]:
    with serve(create_app(settings), free_port()) as url:
        yield Intake(url, tokens, dev_env.client, registry)


@pytest.fixture(scope="module")
def intake(
    intake_settings: Settings,
    dev_env: WorkflowEnvironment,
    tokens: dict[str, str],
    registry: ModelRegistry,
) -> Iterator[Intake]:
    with _intake(intake_settings, dev_env, tokens, registry) as service:
        yield service


@pytest.fixture(scope="module")
def signed_intake(
    intake_settings: Settings,
    dev_env: WorkflowEnvironment,
    tokens: dict[str, str],
    registry: ModelRegistry,
) -> Iterator[Intake]:
    settings = intake_settings.model_copy(update={"alert_hmac_secret": SECRET})
    with _intake(settings, dev_env, tokens, registry) as service:
        yield service


@pytest_asyncio.fixture
async def fresh_models(intake: Intake) -> AsyncIterator[Callable[[int], list[str]]]:
    """Registers ``n`` new models per call; terminates their watches afterwards."""
    made: list[str] = []

    def register(n: int) -> list[str]:
        models = [f"alerted-{uuid.uuid4().hex[:8]}" for _ in range(n)]
        for model in models:
            intake.registry.register(manifest(model), "test")
        made.extend(models)
        return models

    yield register
    for model in made:
        try:
            await intake.temporal.get_workflow_handle(watch_workflow_id(model)).terminate("test")
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise


@dataclass
class WatchHistory:
    starts: list[WatchInput]
    deliveries: list[AlertDelivery]


async def watch_history(client: Client, model: str) -> WatchHistory:
    """The watch's start input and every ``alerts`` signal, decoded as the worker would."""
    history = await client.get_workflow_handle(watch_workflow_id(model)).fetch_history()
    found = WatchHistory([], [])
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started = event.workflow_execution_started_event_attributes
            assert started.workflow_type.name == WATCH_WORKFLOW
            found.starts += await client.data_converter.decode(started.input.payloads, [WatchInput])
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signaled = event.workflow_execution_signaled_event_attributes
            assert signaled.signal_name == SIGNAL_ALERTS
            found.deliveries += await client.data_converter.decode(
                signaled.input.payloads, [AlertDelivery]
            )
    return found


async def assert_no_watch(client: Client, model: str) -> None:
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(watch_workflow_id(model)).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


def normalised(body: dict[str, Any], model: str) -> list[AlertEvent]:
    """What the watch of ``model`` must receive for an Alertmanager ``body``."""
    payload = AlertmanagerPayload.model_validate(body)
    events = alerts_by_model(payload.alerts, ["fairlane_model"], manifest)
    return events[model].events


async def test_an_alertmanager_delivery_starts_the_watch_with_its_alerts(
    intake: Intake, intake_settings: Settings, fresh_models: Callable[[int], list[str]]
) -> None:
    [model] = fresh_models(1)
    body = retarget(sample("firing"), model)
    async with intake.client() as client:
        response = await client.post("/v1/alerts/alertmanager", headers=intake.headers(), json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["delivery_id"].startswith("dlv-")
    assert accepted["alerts"] == 1 and accepted["models"] == {model: 1}
    assert accepted["watches"] == {model: watch_workflow_id(model)}

    history = await watch_history(intake.temporal, model)
    assert history.starts == [
        WatchInput(
            model=model,
            target=GATEWAY,
            default_playbook="drift-rollback",
            default_severity=Severity.SEV1,
            # its alerts are recorded on the trail from the main queue, not its own
            bookkeeping_task_queue=intake_settings.task_queue,
        )
    ]
    [delivery] = history.deliveries
    assert delivery.delivery_id == accepted["delivery_id"]
    assert delivery.sender == "alertmanager"
    assert delivery.alerts == normalised(body, model)
    assert delivery.alerts[0].ends_at is None


async def test_later_deliveries_signal_the_same_running_watch(
    intake: Intake, fresh_models: Callable[[int], list[str]]
) -> None:
    [model] = fresh_models(1)
    bodies = [retarget(sample(name), model) for name in ("firing", "firing", "resolved")]
    async with intake.client() as client:
        for body in bodies:
            response = await client.post(
                "/v1/alerts/alertmanager", headers=intake.headers(), json=body
            )
            assert response.status_code == 202, response.text
    history = await watch_history(intake.temporal, model)
    assert len(history.starts) == 1  # one run, three signals: nothing started twice
    assert [d.alerts for d in history.deliveries] == [normalised(b, model) for b in bodies]
    assert len({d.delivery_id for d in history.deliveries}) == 3  # a repeat is still a delivery


async def test_a_group_spanning_two_models_signals_two_watches(
    intake: Intake, fresh_models: Callable[[int], list[str]]
) -> None:
    models = fresh_models(2)
    body = retarget(sample("group-partly-resolved"), *models)
    async with intake.client() as client:
        response = await client.post("/v1/alerts/alertmanager", headers=intake.headers(), json=body)
    assert response.status_code == 202, response.text
    assert response.json()["models"] == {models[0]: 1, models[1]: 1}
    for model, status in zip(models, ("firing", "resolved"), strict=True):
        [delivery] = (await watch_history(intake.temporal, model)).deliveries
        assert delivery.delivery_id == response.json()["delivery_id"]
        assert delivery.alerts == normalised(body, model)
        assert delivery.alerts[0].status == status


async def test_a_storm_starts_one_watch_and_loses_no_delivery(
    intake: Intake, fresh_models: Callable[[int], list[str]]
) -> None:
    [model] = fresh_models(1)
    body = retarget(sample("firing"), model)
    async with intake.client() as client:
        responses = await asyncio.gather(
            *(
                client.post("/v1/alerts/alertmanager", headers=intake.headers(), json=body)
                for _ in range(60)
            )
        )
    assert [r.status_code for r in responses] == [202] * 60
    history = await watch_history(intake.temporal, model)
    assert len(history.starts) == 1
    assert sorted(d.delivery_id for d in history.deliveries) == sorted(
        r.json()["delivery_id"] for r in responses
    )


async def test_generic_alerts_reach_their_watches(
    intake: Intake, fresh_models: Callable[[int], list[str]]
) -> None:
    first, second = fresh_models(2)
    alerts: list[dict[str, Any]] = [
        {
            "model": first,
            "name": "ApprovalGap",
            "starts_at": "2026-11-23T10:00:00+01:00",
            "summary": "approval-rate gap 0.21 between groups",
            "labels": {"severity": "critical", "monitor": "evidently"},
        },
        {
            "model": first,
            "name": "LimitGap",
            "status": "resolved",
            "fingerprint": "evidently-limit-gap",
            "starts_at": "2026-11-23T08:00:00Z",
            "ends_at": "2026-11-23T09:00:00Z",
            "generator_url": "https://monitor.example/limit-gap",
        },
        {"model": second, "name": "ApprovalGap", "starts_at": "2026-11-23T10:00:00Z"},
    ]
    async with intake.client() as client:
        for _ in range(2):  # the same alerts twice: same fingerprints both times
            response = await client.post(
                "/v1/alerts", headers=intake.headers(), json={"alerts": alerts}
            )
            assert response.status_code == 202, response.text
            assert response.json()["models"] == {first: 2, second: 1}

    expected = [GenericAlert.model_validate(a).to_event(a["model"]) for a in alerts]
    assert expected[0].source is AlertSource.WEBHOOK and len(expected[0].fingerprint) == 64
    for model, events in ((first, expected[:2]), (second, expected[2:])):
        history = await watch_history(intake.temporal, model)
        assert len(history.starts) == 1
        assert [d.alerts for d in history.deliveries] == [events, events]


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
    (
        "missing fingerprint",
        lambda b: b["alerts"][0].pop("fingerprint"),
        "alerts[0].fingerprint",
        "Field required",
    ),
    (
        "bad startsAt",
        lambda b: b["alerts"][0].update(startsAt="last tuesday"),
        "alerts[0].startsAt",
        "Input should be a valid datetime",
    ),
    (
        "version 3",
        lambda b: b.update(version="3"),
        "version",
        "Alertmanager webhook payload version '3' is not supported",
    ),
    ("alerts not a list", lambda b: b.update(alerts={"0": {}}), "alerts", "valid array"),
    ("empty alerts", lambda b: b.update(alerts=[]), "alerts", "at least 1 item"),
    (
        "no model label",
        lambda b: b["alerts"][0]["labels"].pop("fairlane_model"),
        "alerts[0].labels",
        "no label names the model; expected one of: fairlane_model, model",
    ),
    (
        "unregistered model",
        lambda b: b["alerts"][0]["labels"].update(fairlane_model="no-such-model"),
        "alerts[0].labels.fairlane_model",
        "model 'no-such-model' is not registered",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
async def test_a_malformed_alertmanager_body_gets_422_naming_the_field(
    intake: Intake,
    fresh_models: Callable[[int], list[str]],
    mutate: Callable[[dict[str, Any]], Any],
    field: str,
    message: str,
) -> None:
    [model] = fresh_models(1)
    body = retarget(sample("firing"), model)
    mutate(body)
    async with intake.client() as client:
        response = await client.post("/v1/alerts/alertmanager", headers=intake.headers(), json=body)
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["field"] == field
    assert message in problem["msg"]
    assert problem["message"] == f"{field}: {problem['msg']}"
    await assert_no_watch(intake.temporal, model)


async def test_a_delivery_is_all_or_nothing(
    intake: Intake, fresh_models: Callable[[int], list[str]]
) -> None:
    """One alert of a group for an unregistered model: nothing reaches the good model."""
    [model] = fresh_models(1)
    body = retarget(sample("group-firing"), model, "no-such-model")
    async with intake.client() as client:
        response = await client.post("/v1/alerts/alertmanager", headers=intake.headers(), json=body)
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["detail"]] == ["alerts[1].labels.fairlane_model"]
    await assert_no_watch(intake.temporal, model)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"alertname=FairnessDisparity", "body", "not valid JSON"),
        (b"", "body", "not valid JSON"),
        (b"[]", "body", "Input should be an object"),
    ],
    ids=["form-encoded", "empty", "a list"],
)
async def test_a_non_json_or_non_object_body_gets_422(
    intake: Intake, body: bytes, field: str, message: str
) -> None:
    async with intake.client() as client:
        for path in ("/v1/alerts/alertmanager", "/v1/alerts"):
            response = await client.post(path, headers=intake.headers(), content=body)
            assert response.status_code == 422, (path, response.text)
            [problem] = response.json()["detail"]
            assert problem["field"] == field and message in problem["msg"], problem


async def test_a_malformed_generic_alert_gets_422_naming_the_field(
    intake: Intake, fresh_models: Callable[[int], list[str]]
) -> None:
    [model] = fresh_models(1)
    good = {"model": model, "name": "ApprovalGap", "starts_at": "2026-11-23T10:00:00Z"}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({**good, "startsAt": good["starts_at"]}, "alerts[0].startsAt", "Extra inputs"),
        ({**good, "starts_at": "2026-11-23T10:00:00"}, "alerts[0].starts_at", "timezone"),
        ({**good, "status": "pending"}, "alerts[0].status", "'firing' or 'resolved'"),
        ({**good, "model": "no-such-model"}, "alerts[0].model", "is not registered"),
        (
            {**good, "ends_at": "2026-11-23T09:00:00Z"},
            "alerts[0]",
            "ends_at is before starts_at",
        ),
    ]
    async with intake.client() as client:
        for alert, field, message in cases:
            response = await client.post(
                "/v1/alerts", headers=intake.headers(), json={"alerts": [good, alert]}
            )
            assert response.status_code == 422, response.text
            [problem] = response.json()["detail"]
            assert problem["field"] == field.replace("[0]", "[1]"), problem
            assert message in problem["msg"], problem
        single = await client.post("/v1/alerts", headers=intake.headers(), json=good)
        assert single.status_code == 422
        assert {p["field"] for p in single.json()["detail"]} >= {"alerts", "model"}
    await assert_no_watch(intake.temporal, model)


async def test_only_alert_sources_may_post_alerts(intake: Intake) -> None:
    body = sample("firing")
    async with intake.client() as client:
        for path in ("/v1/alerts/alertmanager", "/v1/alerts"):
            for headers, code in (
                ({}, 401),
                ({"Authorization": "Bearer fl_not-a-real-token"}, 401),
                (intake.headers("ic"), 403),
                (intake.headers("auditor"), 403),
            ):
                response = await client.post(path, headers=headers, json=body)
                assert response.status_code == code, (path, headers, response.text)


async def test_signatures_are_checked_when_a_secret_is_set(
    signed_intake: Intake, fresh_models: Callable[[int], list[str]]
) -> None:
    [model] = fresh_models(1)
    raw = json.dumps(retarget(sample("firing"), model)).encode()
    headers = {**signed_intake.headers(), "Content-Type": "application/json"}
    right = signed_headers(SECRET, raw)
    wrong = signed_headers(SecretStr("not-the-secret"), raw)
    path = "/v1/alerts/alertmanager"
    async with signed_intake.client() as client:
        missing = await client.post(path, headers=headers, content=raw)
        assert missing.status_code == 401
        assert missing.json()["detail"].startswith(f"missing {SIGNATURE_HEADER}")
        no_time = {SIGNATURE_HEADER: right[SIGNATURE_HEADER]}
        untimed = await client.post(path, headers={**headers, **no_time}, content=raw)
        assert untimed.status_code == 401
        assert untimed.json()["detail"].startswith(f"missing {TIMESTAMP_HEADER}")
        forged = await client.post(path, headers={**headers, **wrong}, content=raw)
        assert forged.status_code == 401
        assert (
            forged.json()["detail"] == f"{SIGNATURE_HEADER} does not match the timestamp and body"
        )
        assert HMAC_SECRET not in forged.text and right[SIGNATURE_HEADER] not in forged.text
        tampered = await client.post(
            path, headers={**headers, **right}, content=raw.replace(b"2", b"3")
        )
        assert tampered.status_code == 401
        later = {**right, TIMESTAMP_HEADER: str(int(right[TIMESTAMP_HEADER]) + 1)}
        retimed = await client.post(path, headers={**headers, **later}, content=raw)
        assert retimed.status_code == 401  # the timestamp is signed too
        await assert_no_watch(signed_intake.temporal, model)

        signed = await client.post(path, headers={**headers, **right}, content=raw)
        assert signed.status_code == 202, signed.text
        unsigned_elsewhere = await client.post(
            "/v1/alerts", headers=headers, json={"alerts": [{"model": model}]}
        )
        assert unsigned_elsewhere.status_code == 401  # checked before the body is parsed
    assert len((await watch_history(signed_intake.temporal, model)).deliveries) == 1


async def test_a_replayed_signed_alert_is_refused_even_by_a_restarted_api(
    signed_intake: Intake,
    intake_settings: Settings,
    dev_env: WorkflowEnvironment,
    tokens: dict[str, str],
    registry: ModelRegistry,
    fresh_models: Callable[[int], list[str]],
) -> None:
    [model] = fresh_models(1)
    raw = json.dumps({"alerts": [generic_alert(model)]}).encode()
    headers = {**signed_intake.headers(), **signed_headers(SECRET, raw)}
    async with signed_intake.client() as client:
        first = await client.post("/v1/alerts", headers=headers, content=raw)
        replayed = await client.post("/v1/alerts", headers=headers, content=raw)
    assert first.status_code == 202, first.text
    assert replayed.status_code == 409
    assert "already received: a replay" in replayed.json()["detail"]

    settings = intake_settings.model_copy(update={"alert_hmac_secret": SECRET})
    with _intake(settings, dev_env, tokens, registry) as another_api:  # same database
        async with another_api.client() as client:
            again = await client.post("/v1/alerts", headers=headers, content=raw)
    assert again.status_code == 409
    assert len((await watch_history(signed_intake.temporal, model)).deliveries) == 1


@pytest.mark.parametrize(
    ("skew", "why"),
    [(-400, "s old, outside the 300s window"), (400, "s in the future, outside the 300s window")],
    ids=["stale", "future"],
)
async def test_a_timestamp_outside_the_window_is_refused(
    signed_intake: Intake, fresh_models: Callable[[int], list[str]], skew: int, why: str
) -> None:
    [model] = fresh_models(1)
    raw = json.dumps({"alerts": [generic_alert(model)]}).encode()
    headers = {**signed_intake.headers(), **signed_headers(SECRET, raw, int(time.time()) + skew)}
    async with signed_intake.client() as client:
        response = await client.post("/v1/alerts", headers=headers, content=raw)
    assert response.status_code == 401
    assert why in response.json()["detail"]
    await assert_no_watch(signed_intake.temporal, model)


async def test_a_delivery_not_accepted_may_be_sent_again_with_the_same_signature(
    intake_settings: Settings,
    dev_env: WorkflowEnvironment,
    tokens: dict[str, str],
    registry: ModelRegistry,
    signed_intake: Intake,
    fresh_models: Callable[[int], list[str]],
) -> None:
    """A 503 promises that sending again is safe: the claim on the signature is released."""
    [model] = fresh_models(1)
    raw = json.dumps({"alerts": [generic_alert(model)]}).encode()
    headers = {**signed_intake.headers(), **signed_headers(SECRET, raw)}
    broken = intake_settings.model_copy(
        update={"alert_hmac_secret": SECRET, "temporal_address": f"127.0.0.1:{free_port()}"}
    )
    with _intake(broken, dev_env, tokens, registry) as unavailable:
        async with unavailable.client() as client:
            refused = await client.post("/v1/alerts", headers=headers, content=raw)
    assert refused.status_code == 503
    async with signed_intake.client() as client:
        retried = await client.post("/v1/alerts", headers=headers, content=raw)
    assert retried.status_code == 202, retried.text


async def test_legacy_body_only_signatures_need_the_setting(
    signed_intake: Intake,
    intake_settings: Settings,
    dev_env: WorkflowEnvironment,
    tokens: dict[str, str],
    registry: ModelRegistry,
    fresh_models: Callable[[int], list[str]],
) -> None:
    [model] = fresh_models(1)
    raw = json.dumps({"alerts": [generic_alert(model)]}).encode()
    headers = {**signed_intake.headers(), SIGNATURE_HEADER: sign_legacy(SECRET, raw)}
    async with signed_intake.client() as client:
        refused = await client.post("/v1/alerts", headers=headers, content=raw)
    assert refused.status_code == 401
    assert "can be replayed" in refused.json()["detail"]

    legacy = intake_settings.model_copy(
        update={"alert_hmac_secret": SECRET, "alert_hmac_allow_legacy": True}
    )
    with _intake(legacy, dev_env, tokens, registry) as allowing:
        async with allowing.client() as client:
            accepted = await client.post("/v1/alerts", headers=headers, content=raw)
    assert accepted.status_code == 202, accepted.text


@pytest.mark.parametrize(
    ("broken", "status", "says"),
    [
        # nothing listens there: retrying later is the cure, so 503 with Retry-After
        ({"temporal_address": f"127.0.0.1:{free_port()}"}, 503, "Temporal is unavailable"),
        # Temporal answers and refuses (no such namespace): retrying will not help
        ({"temporal_namespace": "no-such-namespace"}, 502, "Temporal refused"),
    ],
)
async def test_a_temporal_failure_is_5xx_and_nothing_is_accepted(
    intake_settings: Settings,
    dev_env: WorkflowEnvironment,
    tokens: dict[str, str],
    registry: ModelRegistry,
    fresh_models: Callable[[int], list[str]],
    broken: dict[str, str],
    status: int,
    says: str,
) -> None:
    [model] = fresh_models(1)
    settings = intake_settings.model_copy(update=broken)
    with _intake(settings, dev_env, tokens, registry) as intake:
        async with intake.client() as client:
            response = await client.post(
                "/v1/alerts/alertmanager",
                headers=intake.headers(),
                json=retarget(sample("firing"), model),
            )
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]
    assert ("Retry-After" in response.headers) is (status == 503)
    await assert_no_watch(dev_env.client, model)


async def test_a_huge_group_reaches_its_watch_in_bounded_signals(
    intake: Intake, fresh_models: Callable[[int], list[str]]
) -> None:
    [model] = fresh_models(1)
    alerts = [
        {"model": model, "name": f"SliceGap{i}", "starts_at": "2026-11-23T10:00:00Z"}
        for i in range(2 * MAX_ALERTS_PER_SIGNAL + 50)
    ]
    async with intake.client() as client:
        response = await client.post(
            "/v1/alerts", headers=intake.headers(), json={"alerts": alerts}
        )
    assert response.status_code == 202, response.text
    history = await watch_history(intake.temporal, model)
    sizes = [len(d.alerts) for d in history.deliveries]
    assert sizes == [MAX_ALERTS_PER_SIGNAL, MAX_ALERTS_PER_SIGNAL, 50]
    assert {d.delivery_id for d in history.deliveries} == {response.json()["delivery_id"]}
    assert [a.name for d in history.deliveries for a in d.alerts] == [a["name"] for a in alerts]

"""The gateway's HTTP API: deployments, routes, decisions, their outcomes and window summaries.

Fairlane's model-agnostic gateway (the package keeps its historical name, ``router``):
it serves any registered version of any model from its artifact, answers with
declarative rules while a model is contained, and logs every decision keyed by the
model manifest's protected attributes and strata.

Views stay thin; the work lives in one module per job (route table, deployments,
contract, dispatch, decision log, outcomes); the log, its rollups, windows and
Prometheus counters are the shared :mod:`decisions` package's. Views are plain ``def``:
scoring and the short database transaction are blocking work that FastAPI runs in its thread pool,
off the event loop.
Dependencies are ``async`` and views open their own session, so a request makes one
trip to the thread pool, not one per dependency: each trip is a GIL hand-off that costs
milliseconds on a busy machine, and this is the path the containment benchmark times.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import AwareDatetime, SecretStr
from sqlalchemy import Engine
from sqlmodel import Session

from config.settings import Settings
from contracts.metrics import DecisionWindow
from contracts.routing import Route, RouteUpdate, Serving
from decisions.prometheus import DecisionCounters
from decisions.records import WINDOW_PATH, OutcomeRecord, WindowQuery
from decisions.store import DecisionStoreError, OutcomeConflict, window
from router.contract import ContractError, ModelContract, RequestError
from router.database import create_router_engine
from router.decision_log import query_decisions
from router.deployments import (
    all_deployments,
    get_deployment,
    get_pins,
    save_deployment,
    save_pins,
)
from router.dispatch import Dispatcher
from router.outcomes import ShadowOutcomeError, record
from router.route_table import (
    StaleUpdateError,
    UnknownModelError,
    apply_update,
    ensure_initial_route,
    get_route,
    referenced_versions,
    route_problems,
)
from router.schemas import (
    NAME_PATTERN,
    BatchDecisionRequest,
    BatchDecisions,
    Decision,
    DecisionRequest,
    Deployment,
    DeploymentRequest,
    FallbackDocument,
    LoggedDecision,
    OutcomesRecorded,
    OutcomesRequest,
)
from router.serving import (
    LoadedVersions,
    ModelUnavailableError,
    VersionLoadError,
    load_versions,
)
from store.artifacts import ArtifactError

log = structlog.get_logger(__name__)

ModelId = Annotated[str, PathParam(pattern=NAME_PATTERN)]


class RouterConfigError(ValueError):
    """The router cannot start with these settings."""


@dataclass(frozen=True)
class RouterState:
    """What every request needs, built once by :func:`create_app`."""

    engine: Engine
    versions: LoadedVersions
    token: SecretStr
    counters: DecisionCounters


async def _state(request: Request) -> RouterState:
    state: RouterState = request.app.state.router
    return state


async def _require_token(
    state: Annotated[RouterState, Depends(_state)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    scheme, _, presented = (authorization or "").partition(" ")
    expected = state.token.get_secret_value()
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        presented.strip().encode(), expected.encode()
    ):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


StateDep = Annotated[RouterState, Depends(_state)]

health = APIRouter()
models = APIRouter(prefix="/v1/models/{model}", dependencies=[Depends(_require_token)])


@health.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/metrics", dependencies=[Depends(_require_token)], include_in_schema=False)
def metrics(state: StateDep) -> Response:
    """The documented decision metrics (``decisions.prometheus``) in Prometheus text format;
    scrapers present the gateway's token."""
    return Response(state.counters.exposition(), media_type=CONTENT_TYPE_LATEST)


def _unprocessable(loc: tuple[str | int, ...], message: str, kind: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["body", *loc], "msg": message, "type": kind}])


@models.put("/deployment")
def deploy(model: ModelId, request: DeploymentRequest, state: StateDep) -> Deployment:
    """Check the contract, load the versions (all or nothing), persist them, and give a new
    model its first route."""
    if request.primary_version not in request.versions:
        raise _unprocessable(
            ("primary_version",),
            f"primary_version {request.primary_version!r} is not in versions",
            "value_error",
        )
    if request.manifest.id != model:
        raise _unprocessable(
            ("manifest", "id"),
            f"the manifest is model {request.manifest.id!r}, not {model!r}",
            "value_error",
        )
    try:
        contract = ModelContract.build(request.manifest, request.fallback)
    except ContractError as exc:
        raise _unprocessable(exc.loc, exc.message, "contract") from exc
    rules_version = contract.fallback.version if contract.fallback else None
    if rules_version is not None and rules_version in request.versions:
        raise _unprocessable(
            ("versions", rules_version), "this name is the fallback rules' version", "value_error"
        )
    artifacts = dict(request.versions)
    with Session(state.engine) as session:
        held = get_pins(session, model)
    try:
        # A digest given wins; else the one pinned when this very file was deployed (a
        # redeploy that adds a version must not re-pin a file swapped since); else the
        # file's digest now, pinned from here on.
        pins = {
            version: (
                name,
                request.digests.get(version)
                or _pin(held, version, name)
                or state.versions.store.digest(name),
            )
            for version, name in artifacts.items()
        }
        loaded = load_versions(state.versions.store, pins, contract)
    except ArtifactError as exc:
        raise _unprocessable(("versions",), str(exc), exc.field) from exc
    except VersionLoadError as exc:
        raise _unprocessable(("versions", exc.version), exc.reason, "artifact") from exc

    now = datetime.now(UTC)
    manifest = request.manifest.model_dump(mode="json")
    fallback = None if request.fallback is None else request.fallback.model_dump(mode="json")
    with Session(state.engine) as session:
        try:
            current = get_route(session, model)
        except UnknownModelError:
            current = None
        if current is not None:
            stranded = referenced_versions(current) - artifacts.keys()
            if stranded:
                raise HTTPException(
                    409,
                    f"the current route (generation {current.generation}) still uses "
                    f"{sorted(stranded)}; route away from them before removing them",
                )
        row = save_deployment(
            session,
            model,
            artifacts,
            request.primary_version,
            now,
            manifest=manifest,
            fallback=fallback,
        )
        save_pins(session, model, {v: (name, sha) for v, (name, sha) in pins.items()})
        route = ensure_initial_route(session, model, request.primary_version, now)
        session.commit()
        state.versions.contract(row)  # built once, here, for the requests to come
    state.versions.install(model, artifacts, loaded)
    log.info(
        "model deployed",
        model=model,
        versions=sorted(artifacts),
        primary_version=request.primary_version,
        rules_version=rules_version,
    )
    return Deployment(
        model=model,
        versions=artifacts,
        primary_version=request.primary_version,
        updated_at=now,
        route=route,
        manifest=request.manifest,
        fallback=request.fallback,
        rules_version=rules_version,
    )


@models.get("/deployment")
def read_deployment(model: ModelId, state: StateDep) -> Deployment:
    """The deployed versions, contract and route: a writer adds a version and keeps the rest."""
    with Session(state.engine) as session:
        row = get_deployment(session, model)
        if row is None:
            raise UnknownModelError(model)
        contract = state.versions.contract(row)
        return Deployment(
            model=model,
            versions=row.versions,
            primary_version=row.primary_version,
            updated_at=row.updated_at,
            route=get_route(session, model),
            manifest=contract.manifest,
            fallback=None
            if row.fallback is None
            else FallbackDocument.model_validate(row.fallback),
            rules_version=contract.fallback.version if contract.fallback else None,
        )


@models.get("/route")
def read_route(model: ModelId, state: StateDep) -> Route:
    with Session(state.engine) as session:
        return get_route(session, model)


@models.put("/route")
def set_route(model: ModelId, change: RouteUpdate, state: StateDep) -> Route:
    """Apply a route update by the contract's generation rules (see contracts.routing)."""
    with Session(state.engine) as session:
        deployment = get_deployment(session, model)
        if deployment is None:
            raise UnknownModelError(model)
        problems = route_problems(change, deployment.versions.keys())
        if problems:
            raise HTTPException(
                422, f"route for model {model!r} cannot be served: " + "; ".join(problems)
            )
        return apply_update(session, model, change, datetime.now(UTC))


def _dispatch(
    state: RouterState,
    session: Session,
    model: str,
    requests: list[DecisionRequest],
    at: tuple[str, ...],
) -> list[Decision]:
    route = get_route(session, model)
    deployment = get_deployment(session, model)
    if deployment is None:
        raise UnknownModelError(model)
    contract = state.versions.contract(deployment)
    contract.check(requests, at)
    dispatcher = Dispatcher(session, state.versions, model, deployment.versions, contract)
    return dispatcher.decide(route, requests, datetime.now(UTC), state.counters)


@models.post("/decisions")
def decide(model: ModelId, request: DecisionRequest, state: StateDep) -> Decision:
    """Answer one request by the model's route; it is checked against the deployed contract."""
    with Session(state.engine) as session:
        return _dispatch(state, session, model, [request], ("body",))[0]


@models.post("/decisions:batch")
def decide_batch(model: ModelId, body: BatchDecisionRequest, state: StateDep) -> BatchDecisions:
    """Answer up to ``MAX_BATCH`` requests at once, scored as one DataFrame per side.

    All or nothing: one record that breaks the contract refuses the batch (422 naming
    ``records[i]`` and its field), and nothing is scored or logged.
    """
    with Session(state.engine) as session:
        return BatchDecisions(
            decisions=_dispatch(state, session, model, body.records, ("body", "records"))
        )


@models.get("/decisions")
def list_decisions(
    model: ModelId,
    state: StateDep,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    served_by: Serving | None = None,
    include_shadow: bool = False,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> list[LoggedDecision]:
    """Logged decisions, oldest first, with ``since <= at < until``."""
    with Session(state.engine) as session:
        get_route(session, model)  # an unknown model is a 404, not an empty list
        return query_decisions(
            session,
            model,
            since=since,
            until=until,
            served_by=served_by,
            include_shadow=include_shadow,
            limit=limit,
        )


@health.get(WINDOW_PATH, dependencies=[Depends(_require_token)])
def decision_window(
    model: ModelId, query: Annotated[WindowQuery, Depends()], state: StateDep
) -> DecisionWindow:
    """Live decisions in the minutes overlapping ``[since, until)`` as canary cells, from
    the per-minute rollups (``decisions.store.window``): cells x minutes, not rows."""
    if query.until < query.since:
        raise HTTPException(
            422, f"until ({query.until.isoformat()}) is before since ({query.since.isoformat()})"
        )
    with Session(state.engine) as session:
        get_route(session, model)
        return window(
            session,
            model,
            query.candidate_version,
            query.since,
            query.until,
            provider="decision_log",
        )


@models.post("/outcomes")
def add_outcomes(model: ModelId, body: OutcomesRequest, state: StateDep) -> OutcomesRecorded:
    """Record outcomes of live decisions, all or nothing; resending one is a no-op."""
    outcomes = [OutcomeRecord(decision_id=o.decision_id, outcome=o.good) for o in body.outcomes]
    with Session(state.engine) as session:
        get_route(session, model)
        try:
            recorded = record(session, model, outcomes)
        except ShadowOutcomeError as exc:
            raise _unprocessable(
                ("outcomes", exc.index, "decision_id"), str(exc), "shadow"
            ) from exc
        except DecisionStoreError as exc:
            problem = [
                {
                    "loc": ["body", "outcomes", exc.index, exc.field],
                    "msg": str(exc),
                    "type": "outcome",
                }
            ]
            raise HTTPException(409 if isinstance(exc, OutcomeConflict) else 422, problem) from exc
    state.counters.count_outcomes(recorded.cells)
    return OutcomesRecorded(recorded=recorded.recorded, unchanged=recorded.unchanged)


def _reload_deployments(engine: Engine, versions: LoadedVersions) -> None:
    """Load every persisted deployment; one broken artifact must not keep the others down.

    A version whose file no longer has its pinned sha256 is refused here and stays
    unavailable (503 when a route needs it), never served.
    """
    with Session(engine) as session:
        rows = [(row, get_pins(session, row.model)) for row in all_deployments(session)]
    for row, pins in rows:
        pinned = {
            version: (name, _pin(pins, version, name)) for version, name in row.versions.items()
        }
        try:
            contract = versions.contract(row)
            versions.install(
                row.model, row.versions, load_versions(versions.store, pinned, contract)
            )
        except (VersionLoadError, ContractError) as exc:
            log.error("deployment not reloaded", model=row.model, reason=str(exc))


def _pin(pins: dict[str, tuple[str, str]], version: str, name: str) -> str | None:
    """The sha256 pinned for ``version`` if it was pinned for this very artifact name."""
    pinned = pins.get(version)
    return pinned[1] if pinned is not None and pinned[0] == name else None


def _error(status_code: int, detail: str, **extra: object) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status_code)


def create_app(settings: Settings) -> FastAPI:
    """The gateway app for ``settings``; its database is created and deployments reloaded here."""
    token = settings.router_token
    if token is None or not token.get_secret_value().strip():
        raise RouterConfigError("the gateway needs a token: set FAIRLANE_ROUTER_TOKEN")
    engine = create_router_engine(settings.resolved_router_database_url)
    versions = LoadedVersions(settings.artifact_store())
    _reload_deployments(engine, versions)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="Fairlane model gateway", lifespan=lifespan)
    app.state.router = RouterState(
        engine=engine, versions=versions, token=token, counters=DecisionCounters()
    )
    app.include_router(health)
    app.include_router(models)

    @app.exception_handler(UnknownModelError)
    async def unknown_model(_request: Request, exc: UnknownModelError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(StaleUpdateError)
    async def stale_route(_request: Request, exc: StaleUpdateError) -> JSONResponse:
        return _error(409, exc.reason, current=exc.current.model_dump(mode="json"))

    @app.exception_handler(RequestError)
    async def bad_request(_request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": exc.errors}, status_code=422)

    @app.exception_handler(ModelUnavailableError)
    async def model_unavailable(_request: Request, exc: ModelUnavailableError) -> JSONResponse:
        return _error(503, exc.reason)

    return app

"""The API application factory: wires settings, Temporal, the database and the routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from alerts.replay import ReplayCache
from api import (
    alerts,
    canary,
    codec,
    containment,
    decisions,
    incidents,
    models,
    playbooks,
    reports,
    slack,
    trail,
    training,
    watch,
)
from api.body_limit import BodyLimit
from api.errors import RETRY_AFTER_S, ServiceUnavailable, install_error_handlers
from api.json_bounds import JsonBodyBounds
from api.metrics import install_metrics
from api.temporal import TemporalConnection
from api.tokens import TokenStore
from audit.configure import open_trail
from config import Settings
from incidents.decisions import DecisionSigner
from incidents.outside import watch_outside_ends
from incidents.training_callbacks import TrainingCallbacks
from registry.service import ModelRegistry
from stack.codec import data_converter
from store.db import create_tables, make_engine

log = structlog.get_logger(__name__)


def create_app(settings: Settings) -> FastAPI:
    engine = make_engine(settings.resolved_database_url)
    temporal = TemporalConnection(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Neither Temporal nor the database being down may keep the API from starting:
        # it answers 503 until they are back (api/errors.py).
        tables = None
        if not await _create_tables(engine):
            tables = asyncio.create_task(_create_tables_when_reachable(engine))
        with contextlib.suppress(ServiceUnavailable):
            await temporal.client()
        outside = None
        if settings.outside_end_check_s > 0:
            outside = asyncio.create_task(
                watch_outside_ends(temporal.client, app.state.trail, settings.outside_end_check_s)
            )
        yield
        if outside is not None:
            outside.cancel()
        if tables is not None:
            tables.cancel()
        engine.dispose()

    app = FastAPI(
        title="Fairlane",
        version="0.1.0",
        description="Durable incident response for machine-learning bias crises.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.temporal = temporal
    app.state.tokens = TokenStore(settings.resolved_tokens_file)
    app.state.registry = ModelRegistry(engine, settings.artifact_store())
    app.state.trail = open_trail(engine, settings)
    app.state.training_callbacks = TrainingCallbacks(engine)
    app.state.decision_signer = DecisionSigner.from_settings(settings)
    app.state.alert_replays = ReplayCache(engine)
    install_error_handlers(app)
    # Middleware added last runs first: the body limit before anything reads the body.
    app.add_middleware(JsonBodyBounds)
    app.add_middleware(
        BodyLimit,
        default=settings.max_body_bytes,
        by_prefix={alerts.router.prefix: settings.max_alert_body_bytes},
    )
    app.state.payload_codec = data_converter(settings).payload_codec
    # The Temporal Web UI decodes histories through /v1/codec/decode from the browser.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[settings.temporal_ui_url.rstrip("/")],
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
    )
    install_metrics(app)
    for module in (
        incidents,
        canary,
        codec,
        containment,
        decisions,
        models,
        playbooks,
        reports,
        trail,
        training,
        alerts,
        watch,
        slack,
    ):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness only: says nothing about incidents, so it needs no token."""
        return {"status": "ok"}

    return app


async def _create_tables(engine: Engine) -> bool:
    """Create the tables (idempotent); False if the database cannot be reached now."""
    try:
        await asyncio.to_thread(create_tables, engine)
    except (OperationalError, InterfaceError) as error:
        log.warning("database unreachable; tables not created yet", error=str(error)[:500])
        return False
    return True


async def _create_tables_when_reachable(engine: Engine) -> None:
    """Retry creating the tables until the database answers."""
    while True:
        await asyncio.sleep(RETRY_AFTER_S)
        if await _create_tables(engine):
            return

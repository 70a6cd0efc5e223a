"""The API application factory: wires settings, Temporal, the database and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import (
    alerts,
    canary,
    containment,
    incidents,
    models,
    playbooks,
    reports,
    trail,
    training,
    watch,
)
from api.metrics import install_metrics
from api.tokens import TokenStore
from audit.trail import AuditTrail
from config import Settings
from registry.service import ModelRegistry
from stack.temporal import connect
from store.db import create_tables, make_engine


def create_app(settings: Settings) -> FastAPI:
    engine = make_engine(settings.resolved_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        create_tables(engine)
        app.state.temporal = await connect(settings)
        yield
        engine.dispose()

    app = FastAPI(
        title="Fairlane",
        version="0.1.0",
        description="Durable incident response for machine-learning bias crises.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.tokens = TokenStore(settings.resolved_tokens_file)
    app.state.registry = ModelRegistry(engine)
    app.state.trail = AuditTrail(engine)
    install_metrics(app)
    for module in (
        incidents,
        canary,
        containment,
        models,
        playbooks,
        reports,
        trail,
        training,
        alerts,
        watch,
    ):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness only: says nothing about incidents, so it needs no token."""
        return {"status": "ok"}

    return app

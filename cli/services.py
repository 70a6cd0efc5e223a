"""Commands that run Fairlane's processes: up, worker, api, router."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Annotated

import typer
import uvicorn

from config import Settings
from config.logging import configure_logging
from stack.queues import Queues

CONTAINMENT_SWITCH_INTERVAL_S = 0.001


def up() -> None:
    """Start the embedded stack (Temporal dev server, router, worker, API) until Ctrl-C."""
    from api.tokens import Role, issue_token
    from cli.api_client import operator_token_path
    from stack.supervisor import EmbeddedStack
    from store.files import write_private

    settings = Settings()
    configure_logging("console", settings.log_level)
    token_path = operator_token_path(settings)
    if not token_path.exists():
        token = issue_token(
            settings.resolved_tokens_file, "operator", [Role.ADMIN, Role.INCIDENT_COMMANDER]
        )
        write_private(token_path, token)
        typer.echo(f"operator token written to {token_path} (admin, incident_commander)")

    async def run() -> None:
        stack = EmbeddedStack(settings)
        await stack.start()
        typer.echo(
            f"Fairlane is up: API {settings.api_url}  router {settings.router_url}  "
            f"Temporal UI {settings.temporal_ui_url}  (Ctrl-C stops)"
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            while not stopping.is_set():
                stack.check_alive()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=1)
        finally:
            stack.stop()

    asyncio.run(run())


def worker(
    queue: Annotated[
        Queues,
        typer.Option(
            help="the task queues this process polls: both (the default), the main one "
            "(incidents, every activity) or the containment one (model watches and the "
            "activities that contain a model)",
            case_sensitive=False,
        ),
    ] = Queues.ALL,
) -> None:
    """Run the workers: incidents on the task queue, model watches and containment on the
    containment queue (scale out by running more)."""
    from audit.configure import open_trail
    from stack.temporal import connect, worker_runtime
    from stack.worker import build_worker
    from store.db import create_tables, make_engine

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    engine = make_engine(settings.resolved_database_url)
    create_tables(engine)
    trail = open_trail(engine, settings)

    if queue is Queues.CONTAINMENT:
        # The event loop that runs containment hands the interpreter lock back and forth
        # with the threads of workflow tasks and trail writes: every wake-up waits up to
        # the switch interval (5 ms by default) for it. 1 ms gives containment's steps
        # their turn sooner, for a little throughput (bench/alert_storm.py).
        sys.setswitchinterval(CONTAINMENT_SWITCH_INTERVAL_S)

    async def run() -> None:
        client = await connect(settings, worker_runtime(settings))
        await build_worker(client, settings, trail).run(queue)

    asyncio.run(run())


def api() -> None:
    """Serve the HTTP API (in FAIRLANE_API_WORKERS processes)."""
    from api.processes import serve

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    serve(settings)


def router() -> None:
    """Serve the reference model router."""
    from router.app import create_app

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.router_host,
        port=settings.router_port,
        log_level="warning",
    )

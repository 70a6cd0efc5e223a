"""Serving the API in one process or several (``api_workers``).

One process answers at the speed of one core (Python's interpreter lock), and a batch of
decisions reported for ingestion is mostly Python work. With ``api_workers`` above one,
uvicorn starts that many processes on one socket, each building the app from the same
environment (:func:`app_from_environment`). Nothing a request leaves behind lives in
one process alone: tokens are read again from the tokens file when it changes; console
sessions, alert replays, the model registry, decisions and the trail live in the
database; the outside-end watcher's records are keyed by run, so several watchers put
each on the trail once. Two things are done once, here, before the processes start:

* the files made on a first start (the trail and decision signing keys, the console's
  session secret, the payload keys) are made by building the app once in this process,
  so that the workers find them instead of racing to make different ones;
* the metrics get a fresh directory for prometheus_client's multiprocess files, so a
  scrape sums every process (:mod:`api.metrics`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.metrics import MULTIPROCESS_DIR
from config import Settings
from config.logging import configure_logging
from store.files import private_dir

METRICS_DIR = "api-metrics"
HEALTHCHECK_TIMEOUT_S = 60


def serve(settings: Settings) -> None:
    """Serve the API on ``api_host:api_port`` in ``api_workers`` processes, until stopped."""
    host, port = settings.api_host, settings.api_port
    if settings.api_workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
        return
    create_app(settings)  # the once-made files, made here rather than raced for
    os.environ[MULTIPROCESS_DIR] = str(shared_metrics_dir(settings))
    uvicorn.run(
        f"{__name__}:{app_from_environment.__name__}",
        factory=True,
        workers=settings.api_workers,
        # uvicorn kills a worker that does not answer its ping within this; its default
        # (5 s) kills busy workers on a loaded two-core box, failing their requests.
        timeout_worker_healthcheck=HEALTHCHECK_TIMEOUT_S,
        host=host,
        port=port,
        log_level="warning",
    )


def app_from_environment() -> FastAPI:
    """The app of one worker process, from the settings the parent was started with."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)


def shared_metrics_dir(settings: Settings) -> Path:
    """An empty private directory for this run's metrics files (a previous run's removed:
    its processes are gone, and their counts with them, as a restarted process's are)."""
    path = settings.data_dir / METRICS_DIR
    shutil.rmtree(path, ignore_errors=True)
    return private_dir(path)

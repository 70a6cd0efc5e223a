"""The API served by several processes (``api_workers``): nothing depends on which answers.

``fairlane api`` is started as its own program with ``FAIRLANE_API_WORKERS=2``, and
every request goes over a fresh connection, so the kernel hands them to either process.
Large batches are logged once and all or nothing, the trail is one chain under one
signing key, and a scrape counts every process's requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from api.decisions import DECISIONS_REPORTED
from api.tokens import Role, issue_token
from audit.configure import open_trail
from config import Settings
from contracts.watch import watch_workflow_id
from decisions.tables import DECISIONS, ROLLUPS
from registry.service import ModelRegistry
from stack.loopback import free_port
from store.db import create_tables, make_engine
from tests.fixtures.decisions import MODEL, hiring_manifest, reported

WORKERS = 2
DECISIONS_URL = f"/v1/models/{MODEL}/decisions"
DECISIONS_ROUTE = "/v1/models/{model_id}/decisions"


@dataclass
class Served:
    url: str
    settings: Settings
    tokens: dict[str, str]
    process: subprocess.Popen[bytes]

    def post(self, body: Any) -> httpx.Response:
        """One request on a connection of its own: any process may take it."""
        headers = {"Authorization": f"Bearer {self.tokens['scorer']}"}
        return httpx.post(f"{self.url}{DECISIONS_URL}", json=body, headers=headers, timeout=60)

    def stored(self) -> tuple[int, int]:
        engine = make_engine(self.settings.resolved_database_url)
        with engine.connect() as connection:
            rows = connection.execute(select(func.count()).select_from(DECISIONS)).scalar_one()
            rolled = connection.execute(select(func.sum(ROLLUPS.c.count))).scalar_one()
        engine.dispose()
        return rows, int(rolled or 0)

    def reported_batches(self) -> int:
        engine = make_engine(self.settings.resolved_database_url)
        trail = open_trail(engine, self.settings)
        records = trail.records(watch_workflow_id(MODEL))
        engine.dispose()
        return sum(1 for r in records if r.kind == DECISIONS_REPORTED)

    def requests_counted(self, status: str) -> float:
        headers = {"Authorization": f"Bearer {self.tokens['auditor']}"}
        answer = httpx.get(f"{self.url}/metrics", headers=headers, timeout=30)
        answer.raise_for_status()
        return sum(
            sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
            if sample.name == "fairlane_http_requests_total"
            and sample.labels.get("route") == DECISIONS_ROUTE
            and sample.labels.get("status") == status
        )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("api-processes")
    port = free_port()
    settings = Settings(data_dir=data_dir)
    engine = make_engine(settings.resolved_database_url)
    create_tables(engine)
    ModelRegistry(engine).register(hiring_manifest(), "admin")
    engine.dispose()
    tokens = {
        "scorer": issue_token(settings.resolved_tokens_file, "scorer", [Role.DECISION_REPORTER]),
        "auditor": issue_token(settings.resolved_tokens_file, "auditor", [Role.AUDITOR]),
    }
    env = {
        **os.environ,
        "FAIRLANE_DATA_DIR": str(data_dir),
        "FAIRLANE_API_PORT": str(port),
        "FAIRLANE_API_WORKERS": str(WORKERS),
        "FAIRLANE_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",  # nobody: not needed here
        "FAIRLANE_OUTSIDE_END_CHECK_S": "0",
    }
    log = (data_dir / "api.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import main; main()", "api"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, data_dir / "api.log")
        yield Served(url, settings, tokens, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180  # two interpreters importing everything, on a busy box
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fairlane api exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"fairlane api did not answer: {log.read_text()[-2000:]}")


def _children(pid: int) -> list[str]:
    """The command lines of ``pid``'s child processes (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(cmdline)
    return found


def test_the_api_runs_in_as_many_processes_as_set(api: Served) -> None:
    workers = [c for c in _children(api.process.pid) if "spawn_main" in c]
    assert len(workers) == WORKERS, _children(api.process.pid)


def test_a_bad_record_deep_in_a_large_batch_is_named_and_nothing_is_written(
    api: Served,
) -> None:
    before = api.stored()
    decisions = [reported(n, decision_id=f"large-{n}") for n in range(1000)]
    decisions[737]["values"]["race"] = "martian"
    answer = api.post({"decisions": decisions})
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["loc"] == ["body", "decisions", 737, "values", "race"]
    assert "martian" in problem["msg"]
    assert api.stored() == before


def test_batches_to_either_process_are_logged_once_on_one_signed_trail(api: Served) -> None:
    before_rows, before_rolled = api.stored()
    before_batches = api.reported_batches()
    batches = [
        {"decisions": [reported(n, decision_id=f"spread-{b}-{n}") for n in range(250)]}
        for b in range(8)
    ]
    with ThreadPoolExecutor(4) as pool:
        first = list(pool.map(api.post, batches))
        again = list(pool.map(api.post, batches))  # resent, maybe to the other process
    assert [a.status_code for a in first + again] == [200] * 16, [a.text for a in first]
    assert sum(a.json()["written"] for a in first) == 2000
    assert sum(a.json()["written"] for a in again) == 0
    assert api.stored() == (before_rows + 2000, before_rolled + 2000)
    assert api.reported_batches() == before_batches + 8  # a resent batch is on it once

    engine = make_engine(api.settings.resolved_database_url)
    report = open_trail(engine, api.settings).verify()
    engine.dispose()
    assert report.ok, json.dumps(report.model_dump(mode="json"))[:2000]


def test_a_scrape_counts_the_requests_of_every_process(api: Served) -> None:
    before = api.requests_counted("200")
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                api.post,
                [{"decisions": [reported(n, decision_id=f"counted-{n}")]} for n in range(12)],
            )
        )
    assert [a.status_code for a in answers] == [200] * 12
    # whichever process answers each scrape, it sums every process's counts
    assert [api.requests_counted("200") for _ in range(6)] == [before + 12] * 6

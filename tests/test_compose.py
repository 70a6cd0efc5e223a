"""docker-compose.yml, the scale-out deployment: valid, and consistent with Settings and the CLI.

No Docker engine is needed. `docker-compose config` validates and interpolates the file
exactly as `docker-compose up` would; everything else is read from what it prints.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml
from pydantic import AliasChoices

from config.settings import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"

# The secrets compose must refuse to start without, and dummy values for them.
SECRETS = {
    "POSTGRES_PASSWORD": "dummy-postgres-password",
    "FAIRLANE_ROUTER_TOKEN": "dummy-router-token",
}
# Fairlane's services, each running `fairlane <command>` from the one image.
FAIRLANE_SERVICES = {"worker": "worker", "api": "api", "router": "router"}
PINNED_TEMPORAL_IMAGES = ("temporalio/server", "temporalio/admin-tools", "temporalio/ui")
ONE_SHOTS = ("temporal-setup", "temporal-namespace")
SECRET_KEY = re.compile(r"(PASSWORD|PWD|TOKEN|SECRET|API_KEY)$")
REQUIRED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?")


# -- running docker-compose ---------------------------------------------------------------


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not installed, so docker-compose.yml cannot be validated: "
            "run scripts/ensure-test-programs.sh (it installs Debian's docker-compose), "
            "then re-run the tests",
            pytrace=False,
        )
    return exe


def _compose_config(env_dir: Path, secrets: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with only `secrets` set among the file's variables.

    The caller's shell and any .env beside the compose file are kept out, so the result
    does not depend on whose machine runs the test.
    """
    empty_env_file = env_dir / "empty.env"
    empty_env_file.write_text("")
    interpolated = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in interpolated and not key.startswith("COMPOSE_")
    }
    env.update(secrets)
    return subprocess.run(
        [_docker_compose(), "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config"],
        env=env,
        cwd=env_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The configuration compose would run, with dummy secrets."""
    result = _compose_config(tmp_path_factory.mktemp("compose"), SECRETS)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


@pytest.fixture(scope="module")
def services(resolved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resolved["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):  # `- KEY=value` form
        environment = dict(item.partition("=")[::2] for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def _script(service: dict[str, Any]) -> str:
    """A one-shot's shell script as its container receives it (`$$` is compose's `$`)."""
    assert service["entrypoint"] == ["/bin/sh", "-ec"]
    (script,) = service["command"]
    return str(script).replace("$$", "$")


def _published_ports(service: dict[str, Any]) -> list[tuple[int | None, int]]:
    """(published, target) for each port entry, whichever syntax compose printed."""
    pairs: list[tuple[int | None, int]] = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            pairs.append((int(published) if published else None, int(entry["target"])))
            continue
        parts = str(entry).split("/", 1)[0].split(":")
        published = parts[-2] if len(parts) >= 2 else None
        pairs.append((int(published) if published else None, int(parts[-1])))
    return pairs


def _settings_env_names() -> set[str]:
    """Every environment variable Settings reads."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice.upper() for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias.upper())
        names.add(f"{prefix}{name}".upper())
    return names


def _settings_for(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in list(os.environ):
        if key.startswith("FAIRLANE_") or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def _default(field: str) -> Any:
    return Settings.model_fields[field].default


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Mount target -> named volume (or host path)."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts[str(volume["target"])] = str(volume.get("source", ""))
        else:
            source, target = str(volume).split(":")[:2]
            mounts[target] = source
    return mounts


def _binds_all_interfaces(host: str) -> bool:
    return ipaddress.ip_address(host).is_unspecified


# -- the file is valid, and needs its secrets ---------------------------------------------


def test_config_is_valid_with_the_secrets_set(services: dict[str, dict[str, Any]]) -> None:
    expected = {"postgres", "temporal", "temporal-ui", *ONE_SHOTS, *FAIRLANE_SERVICES}
    assert expected <= set(services)


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_config_refuses_to_run_without_a_secret(missing: str, tmp_path: Path) -> None:
    secrets = {key: value for key, value in SECRETS.items() if key != missing}
    result = _compose_config(tmp_path, secrets)
    assert result.returncode != 0, f"docker-compose config accepted a missing {missing}"
    assert f"{missing} is required" in result.stderr
    assert ".env" in result.stderr  # says where to set it


def test_secrets_come_from_the_environment_never_literals() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, service in raw["services"].items():
        for key, value in _env(service).items():
            password_in_url = urlsplit(value).password if "://" in value else None
            if SECRET_KEY.search(key) or password_in_url:
                assert REQUIRED_VAR.search(value), (
                    f"{name}: {key} must come from ${{VAR:?message}}, not a literal or a default"
                )
    text = COMPOSE_FILE.read_text()
    for secret in SECRETS:
        references = re.findall(r"\$\{" + secret + r"(?![A-Za-z0-9_])(:\?)?", text)
        assert references, f"{secret} is never used"
        assert set(references) == {":?"}, f"every use of {secret} must be ${{{secret}:?...}}"


def test_env_example_names_every_required_variable() -> None:
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    required = set(REQUIRED_VAR.findall(COMPOSE_FILE.read_text()))
    assert required == set(SECRETS)
    assert required <= set(example)
    assert not any(example[name].strip() for name in required), ".env.example holds a secret"
    settings_names = _settings_env_names()
    for name in example:
        if name.startswith("FAIRLANE_"):
            assert name in settings_names, f".env.example: {name} is not a Settings field"


# -- Fairlane's services ------------------------------------------------------------------


def _cli_commands() -> set[str]:
    try:
        from cli.main import app
    except ImportError as exc:
        pytest.fail(
            f"cannot import the Typer app cli.main:app ({exc}); docker-compose.yml runs "
            f"`fairlane {'|'.join(sorted(FAIRLANE_SERVICES.values()))}`",
            pytrace=False,
        )
    command = typer.main.get_command(app)
    return set(getattr(command, "commands", {}))


def test_every_fairlane_service_runs_a_real_cli_command(
    services: dict[str, dict[str, Any]],
) -> None:
    built = {name for name, service in services.items() if "build" in service}
    assert built == set(FAIRLANE_SERVICES), "a service built from the Fairlane image is untested"
    assert re.search(r'^ENTRYPOINT \["fairlane"\]$', DOCKERFILE.read_text(), re.MULTILINE)
    commands = _cli_commands()
    for name, command in FAIRLANE_SERVICES.items():
        argv = services[name].get("entrypoint", []) + services[name]["command"]
        assert argv == ["fairlane", command], f"{name} runs {argv}"
        assert command in commands, f"`fairlane {command}` is not a command: {sorted(commands)}"


def test_every_fairlane_variable_is_a_settings_field(
    services: dict[str, dict[str, Any]],
) -> None:
    fields = set(Settings.model_fields)
    settings_names = _settings_env_names()
    for name, service in services.items():
        for key in _env(service):
            if key.startswith("FAIRLANE_"):
                field = key.removeprefix("FAIRLANE_").lower()
                assert field in fields, f"{name}: {key} is not a field of Settings"
        if name in FAIRLANE_SERVICES:
            unknown = set(_env(service)) - settings_names
            assert not unknown, f"{name} is configured outside Settings: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(FAIRLANE_SERVICES))
def test_fairlane_service_settings(
    name: str, services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = services[name]
    settings = _settings_for(_env(service), monkeypatch)

    assert settings.temporal_embedded is False
    assert settings.log_format == "json"
    host, _, port = settings.temporal_address.rpartition(":")
    assert host in services and port == "7233"

    for url in filter(None, (settings.database_url, settings.router_database_url)):
        parts = urlsplit(url)
        assert parts.scheme in {"postgresql", "postgres", "postgresql+psycopg"}, url
        assert parts.hostname in services and parts.hostname is not None
        assert "image" in services[parts.hostname]
        assert str(services[parts.hostname]["image"]).startswith("postgres:")
        assert parts.path.strip("/"), f"{name}: no database named in {parts.scheme} URL"
    assert settings.database_url is not None

    router = urlsplit(settings.router_url)
    assert router.hostname == "router" and router.port == _default("router_port")
    assert settings.router_token is not None
    assert settings.router_token.get_secret_value() == SECRETS["FAIRLANE_ROUTER_TOKEN"]

    mounts = _mounts(service)
    assert str(settings.data_dir) in mounts, f"{name}: FAIRLANE_DATA_DIR is not on a volume"

    if name == "api":
        assert _binds_all_interfaces(settings.api_host)
        assert settings.tokens_file is not None
        tokens_volume = mounts.get(str(settings.tokens_file.parent))
        assert tokens_volume, "FAIRLANE_TOKENS_FILE is not on a mounted volume"
        for other in set(FAIRLANE_SERVICES) - {"api"}:
            assert tokens_volume not in _mounts(services[other]).values(), (
                f"only the API needs the tokens file, but {other} mounts it"
            )
    if name == "router":
        assert _binds_all_interfaces(settings.router_host)
        assert settings.router_database_url is not None
        own = urlsplit(settings.router_database_url).path
        assert own != urlsplit(settings.database_url).path, "the router needs its own database"


def test_fairlane_services_share_one_data_volume(services: dict[str, dict[str, Any]]) -> None:
    """The router loads model artifacts by the path the worker wrote them at."""
    placements = set()
    for name in FAIRLANE_SERVICES:
        data_dir = _env(services[name])["FAIRLANE_DATA_DIR"]
        placements.add((data_dir, _mounts(services[name])[data_dir]))
    assert len(placements) == 1, placements


def test_worker_can_scale(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container name forbids --scale worker=N"
    assert not worker.get("ports"), "a host port binding forbids --scale worker=N"


def test_api_and_workers_agree_on_the_task_queues(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API starts watches on the containment queue the workers poll; incidents elsewhere."""
    worker = _settings_for(_env(services["worker"]), monkeypatch)
    api = _settings_for(_env(services["api"]), monkeypatch)
    assert (api.task_queue, api.resolved_containment_task_queue) == (
        worker.task_queue,
        worker.resolved_containment_task_queue,
    )
    assert worker.resolved_containment_task_queue != worker.task_queue


@pytest.mark.parametrize(("name", "field"), [("api", "api_port"), ("router", "router_port")])
def test_api_and_router_ports_are_the_settings_defaults(
    name: str, field: str, services: dict[str, dict[str, Any]]
) -> None:
    ports = _published_ports(services[name])
    assert ports, f"{name} publishes no port"
    assert all(pair == (_default(field), _default(field)) for pair in ports), ports
    assert str(_default(field)) in " ".join(services[name]["healthcheck"]["test"])


# -- Temporal -----------------------------------------------------------------------------


def test_temporal_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    versions: dict[str, set[str]] = {}
    for name, service in services.items():
        repository, _, tag = str(service.get("image", "")).partition(":")
        if repository in PINNED_TEMPORAL_IMAGES:
            assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: {service['image']} is not pinned"
            versions.setdefault(repository, set()).add(tag)
        elif "build" not in service:
            assert tag and tag != "latest", f"{name}: {service.get('image')} is not pinned"
    assert set(versions) == set(PINNED_TEMPORAL_IMAGES)
    assert versions["temporalio/admin-tools"] == versions["temporalio/server"], (
        "admin-tools sets up the schema: it must match the server's version"
    )


def test_search_attributes_are_registered_as_keywords(
    services: dict[str, dict[str, Any]],
) -> None:
    from temporalio.api.enums.v1 import IndexedValueType

    from contracts.incident import SEARCH_ATTRIBUTES

    script = _script(services["temporal-namespace"])
    loop = re.search(r"^for attribute in (.+); do$", script, re.MULTILINE)
    assert loop, "temporal-namespace no longer loops over the search attributes"
    assert set(loop.group(1).split()) == {key.name for key in SEARCH_ATTRIBUTES}
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert all(key.indexed_value_type == keyword for key in SEARCH_ATTRIBUTES)
    assert "--type Keyword" in script
    namespace = _env(services["temporal-namespace"])["TEMPORAL_NAMESPACE"]
    for name in FAIRLANE_SERVICES:
        assert _env(services[name])["FAIRLANE_TEMPORAL_NAMESPACE"] == namespace


def test_start_up_order(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert dependency in ONE_SHOTS and services[dependency]["restart"] == "no"
    needs = {
        "temporal": {"temporal-setup"},
        "worker": {"temporal-setup", "temporal-namespace"},
        "api": {"temporal-setup", "temporal-namespace"},
        "router": {"temporal-setup"},
    }
    for name, one_shots in needs.items():
        depends_on = services[name]["depends_on"]
        for one_shot in one_shots:
            assert depends_on[one_shot]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", ONE_SHOTS)
def test_one_shot_scripts_parse(name: str, services: dict[str, dict[str, Any]]) -> None:
    result = subprocess.run(
        ["sh", "-n"], input=_script(services[name]), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


FAKE_TEMPORAL_CLI = """#!/bin/sh
echo "$*" >> "$STATE/calls"
case "$1 $2 $3" in
  "operator cluster health") [ -f "$STATE/up" ] || { touch "$STATE/up"; exit 1; } ;;
  "operator namespace describe") [ -f "$STATE/namespace" ] ;;
  "operator namespace create") touch "$STATE/namespace" ;;
  "operator search-attribute list") echo "Name Type"; cat "$STATE/attributes" 2>/dev/null ;;
  "operator search-attribute create")
    while [ $# -gt 0 ]; do
      [ "$1" = --name ] && echo "$2 Keyword" >> "$STATE/attributes"
      shift
    done ;;
  *) exit 2 ;;
esac
"""


def test_namespace_set_up_is_idempotent(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Against a stand-in `temporal` CLI: waits for the server, creates what is missing, once."""
    service = services["temporal-namespace"]
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "temporal").write_text(FAKE_TEMPORAL_CLI)
    (fake_bin / "temporal").chmod(0o755)
    (fake_bin / "sleep").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "sleep").chmod(0o755)
    env = {**os.environ, **_env(service), "STATE": str(tmp_path)}
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"

    for _ in range(2):
        result = subprocess.run(
            ["sh", "-ec", _script(service)], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr

    calls = (tmp_path / "calls").read_text().splitlines()
    assert sum("namespace create" in call for call in calls) == 1
    assert sum("search-attribute create" in call for call in calls) == 4
    assert all(f"--address {env['TEMPORAL_ADDRESS']}" in call for call in calls)

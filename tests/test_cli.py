"""The `fairlane` command as a person meets it: clear messages, no tracebacks, no leaked secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import structlog

from api.tokens import Role, TokenStore, hash_token, issue_token
from config.logging import redact_secrets

FAIRLANE = str(Path(sys.executable).parent / "fairlane")


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("FAIRLANE_") and k != "DATABASE_URL"
    }
    environment.update({"FAIRLANE_DATA_DIR": str(tmp_path), **env})
    return subprocess.run(
        [FAIRLANE, *args], capture_output=True, text=True, env=environment, timeout=60, check=False
    )


def test_no_token_is_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    result = _run(tmp_path, "incident", "list")
    assert result.returncode == 1
    assert result.stderr.startswith("error: no API token: set FAIRLANE_API_TOKEN")
    assert "Traceback" not in result.stderr


def test_unreachable_api_names_the_address(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        "incident",
        "show",
        "inc-20261123-abcd",
        FAIRLANE_API_TOKEN="fl_secret-value",
        FAIRLANE_API_URL="http://127.0.0.1:9",
    )
    assert result.returncode == 1
    assert "error: cannot reach the API at http://127.0.0.1:9" in result.stderr
    assert "fl_secret-value" not in result.stderr + result.stdout


def test_tokens_are_shown_once_and_stored_hashed(tmp_path: Path) -> None:
    result = _run(tmp_path, "tokens", "create", "--name", "lee", "--role", "legal")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    stored = (tmp_path / "tokens.json").read_text()
    assert token not in stored
    assert json.loads(stored)["principals"][0]["token_sha256"] == hash_token(token)
    assert (tmp_path / "tokens.json").stat().st_mode & 0o077 == 0
    bad_role = _run(tmp_path, "tokens", "create", "--name", "x", "--role", "emperor")
    assert bad_role.returncode == 2 and "emperor" in bad_role.stderr


def test_a_bad_manifest_names_the_field(tmp_path: Path) -> None:
    manifest = tmp_path / "model.yaml"
    manifest.write_text("id: credit-limit\nversions: []\n")
    result = _run(tmp_path, "model", "register", str(manifest))
    assert result.returncode == 1
    assert "versions: List should have at least 1 item" in result.stderr
    assert "router: Field required" in result.stderr


def test_token_store_sees_new_tokens_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = TokenStore(path)
    assert store.principal_for("fl_anything") is None
    first = issue_token(path, "ana", [Role.AUDITOR])
    principal = store.principal_for(first)
    assert principal is not None and principal.roles == [Role.AUDITOR]
    os.utime(path, (1, 1))  # make sure the next write is seen as a change
    second = issue_token(path, "lee", [Role.LEGAL])
    assert store.principal_for(second) is not None
    assert store.principal_for("fl_wrong") is None


def test_log_lines_never_carry_tokens() -> None:
    event = redact_secrets(
        structlog.get_logger(),
        "info",
        {
            "event": "calling",
            "router_token": "abc",
            "headers": "Authorization: Bearer fl_abc.def",
            "model": "credit-limit",
        },
    )
    assert event["router_token"] == "[redacted]"
    assert event["headers"] == "Authorization: Bearer [redacted]"
    assert event["model"] == "credit-limit"


def test_audit_provenance_on_any_csv_and_json_output(tmp_path: Path) -> None:
    from demo.dataset import write_dataset

    data = write_dataset(tmp_path / "applicants.csv", 3_000, seed=3)
    table = _run(tmp_path, "audit", "provenance", str(data), "--protected", "group")
    assert table.returncode == 0, table.stderr
    assert "zip_code" in table.stdout and "suspected proxy" in table.stdout
    as_json = _run(tmp_path, "audit", "provenance", str(data), "--protected", "group", "--json")
    assert json.loads(as_json.stdout)["suspected_proxies"][0] == "zip_code"
    missing = _run(tmp_path, "audit", "provenance", str(data), "--protected", "gender")
    assert missing.returncode == 1 and "gender" in missing.stderr
    assert "Traceback" not in missing.stderr

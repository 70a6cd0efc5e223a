"""deploy/: the Prometheus and Alertmanager configuration that turns Fairlane's metrics into
alerts on Fairlane, checked by the programs themselves (promtool, amtool, from Debian's
packages, installed by the test set-up).

The fairness rule is unit-tested with promtool on synthetic counters: it fires for a
model that approves one group half as often as another, after its `for:` period, and
stays quiet for a fair model.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
RULES_TEST = REPO / "tests" / "fixtures" / "prometheus" / "fairlane-rules-test.yml"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is missing: run scripts/ensure-test-programs.sh (make test does)")
    return path


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_prometheus_config_and_rules_are_valid(tmp_path: Path) -> None:
    """The secrets and rules paths are the containers'; point them here, then check."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("router-token", "prometheus-api-token"):
        (secrets / name).write_text("dummy")
    config = (DEPLOY / "prometheus.yml").read_text()
    assert "/etc/fairlane-secrets/" in config and "credentials:" not in config
    local = tmp_path / "prometheus.yml"
    local.write_text(
        config.replace("/etc/fairlane-secrets/", f"{secrets}/").replace(
            "/etc/prometheus/rules/", f"{DEPLOY / 'rules'}/"
        )
    )
    output = _run(_tool("promtool"), "check", "config", str(local))
    assert "3 rules found" in output


def test_alertmanager_sends_everything_to_fairlane_with_a_token_file() -> None:
    _run(_tool("amtool"), "check-config", str(DEPLOY / "alertmanager.yml"))
    config = (DEPLOY / "alertmanager.yml").read_text()
    assert "/v1/alerts/alertmanager" in config and "send_resolved: true" in config
    assert "credentials_file:" in config and "credentials:" not in config


def test_the_disparate_impact_rule_fires_for_the_unfair_model_only(tmp_path: Path) -> None:
    test_file = tmp_path / "rules-test.yml"
    test_file.write_text(
        RULES_TEST.read_text().replace("RULES", str(DEPLOY / "rules" / "fairlane.yml"))
    )
    assert "SUCCESS" in _run(_tool("promtool"), "test", "rules", str(test_file))

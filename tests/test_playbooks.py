"""The playbook schema and loader: what ships is valid, and mistakes are named by YAML path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from playbooks.base import FailureAction
from playbooks.loader import (
    BUILTIN_PLAYBOOKS,
    PlaybookError,
    builtin_playbook,
    find_playbook,
    load_playbook_text,
)
from playbooks.schema import Playbook
from playbooks.steps import SignoffStep


@pytest.mark.parametrize("name", BUILTIN_PLAYBOOKS)
def test_shipped_playbooks_are_valid_and_survive_the_round_trip(name: str) -> None:
    playbook = builtin_playbook(name)
    assert Playbook.model_validate_json(playbook.model_dump_json()) == playbook


def test_drift_rollback_contains_first_and_rolls_back_on_rejection() -> None:
    playbook = builtin_playbook("drift-rollback")
    first = playbook.steps[0]
    assert first.kind == "route" and first.serving.value == "fallback" and first.shadow_primary
    signoff = next(s for s in playbook.steps if isinstance(s, SignoffStep))
    assert signoff.on_failure.action is FailureAction.ROLLBACK
    assert signoff.deadline == timedelta(hours=72)
    assert signoff.reminder_every == timedelta(hours=12)


def test_signoff_defaults_to_the_four_stakeholder_roles() -> None:
    playbook = load_playbook_text(
        "name: p\nversion: '1'\nsteps:\n  - {name: s, kind: signoff, subject: proceed}\n"
    )
    step = playbook.steps[0]
    assert isinstance(step, SignoffStep)
    assert [r.role for r in step.roles] == ["legal", "compliance", "executive", "communications"]


def _problems(text: str) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        load_playbook_text(text)
    return caught.value.problems


def test_errors_name_the_yaml_path_and_line() -> None:
    problems = _problems(
        """name: bad
version: "1"
steps:
  - name: ask
    kind: signoff
    subject: approve?
    roles:
      - role: legal
        quorum: 0
"""
    )
    assert problems == [
        "steps[0].roles[0].quorum (line 9): Input should be greater than or equal to 1"
    ]


def test_unknown_step_kind_is_rejected() -> None:
    problems = _problems("name: x\nversion: '1'\nsteps:\n  - {name: a, kind: teleport}\n")
    assert len(problems) == 1
    assert problems[0].startswith("steps[0] (line 4)") and "teleport" in problems[0]


def test_unknown_keys_are_rejected_not_ignored() -> None:
    problems = _problems(
        "name: x\nversion: '1'\nsteps:\n  - {name: a, kind: notify, message: hi, mesage: typo}\n"
    )
    assert problems[0].startswith("steps[0].mesage")


def test_goto_must_target_an_earlier_step() -> None:
    problems = _problems(
        """name: x
version: "1"
steps:
  - name: a
    kind: notify
    message: hi
    on_failure: {action: goto, step: b}
  - name: b
    kind: notify
    message: hi
"""
    )
    assert "steps[0].on_failure.step 'b' must name an earlier step" in problems[0]


def test_duplicate_step_names_and_unknown_placeholders_are_rejected() -> None:
    dup = _problems(
        "name: x\nversion: '1'\nsteps:\n"
        "  - {name: a, kind: notify, message: hi}\n  - {name: a, kind: notify, message: hi}\n"
    )
    assert "steps[1].name 'a' is already used by steps[0]" in dup[0]
    placeholder = _problems(
        "name: x\nversion: '1'\nsteps:\n  - {name: a, kind: notify, message: 'hi {secret}'}\n"
    )
    assert "unknown placeholders ['secret']" in placeholder[0]


def test_reminders_must_come_before_the_deadline() -> None:
    problems = _problems(
        "name: x\nversion: '1'\nsteps:\n"
        "  - {name: a, kind: signoff, subject: s, deadline: 1h, reminder_every: 2h}\n"
    )
    assert "reminder_every must be shorter than the deadline" in problems[0]


def test_not_yaml_and_not_a_mapping() -> None:
    assert _problems("steps: [")[0].startswith("not valid YAML")
    assert "must be a mapping" in _problems("- just\n- a list\n")[0]


def test_team_playbooks_dir_is_searched_first(tmp_path: Path) -> None:
    (tmp_path / "drift-rollback.yaml").write_text(
        "name: drift-rollback\nversion: team-7\nsteps:\n  - {name: a, kind: notify, message: hi}\n"
    )
    assert find_playbook("drift-rollback", tmp_path).version == "team-7"
    assert find_playbook("ethical-audit", tmp_path).name == "ethical-audit"
    with pytest.raises(PlaybookError, match="no such playbook"):
        find_playbook("nope", tmp_path)


def test_cli_validate_reports_ok_and_problems(tmp_path: Path) -> None:
    good = Path("playbooks/drift-rollback.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: '1'\nsteps:\n  - {name: a, kind: teleport}\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["playbook", "validate", str(good)])
    assert ok.exit_code == 0 and "ok — drift-rollback@1.0" in ok.output
    failed = runner.invoke(app, ["playbook", "validate", str(bad)])
    assert failed.exit_code == 1
    assert "steps[0] (line 4)" in failed.output


def test_nested_step_names_are_unique_and_errors_name_the_nested_path() -> None:
    clash = _problems(
        """name: x
version: "1"
steps:
  - name: audits
    kind: parallel
    steps:
      - {name: provenance, kind: provenance_audit}
      - {name: audits, kind: attribution_audit}
"""
    )
    assert "steps[0].steps[1].name 'audits' is already used by steps[0]" in clash[0]
    nested = _problems(
        """name: x
version: "1"
steps:
  - name: audits
    kind: parallel
    steps:
      - {name: provenance, kind: provenance_audit, proxy_auc: 0.4}
      - {name: attribution, kind: attribution_audit}
"""
    )
    assert nested[0].startswith("steps[0].steps[0].proxy_auc (line 7)")


def test_remediation_strategies_need_their_parameters() -> None:
    problems = _problems(
        "name: x\nversion: '1'\nsteps:\n"
        "  - {name: fix, kind: remediate, strategies: [{name: constrained}]}\n"
    )
    assert "constrained needs `constraint`" in problems[0]


def test_a_monitor_policy_is_validated_where_it_is_written() -> None:
    problems = _problems(
        """name: x
version: "1"
steps:
  - name: watch
    kind: monitor
    policy:
      window: 1h
      interval: 1d
      thresholds: {max_approval_rate_shift: 0.1}
"""
    )
    assert len(problems) == 1
    assert problems[0].startswith("steps[0].policy (line 7)")
    assert "stable side" in problems[0]
    typo = _problems(
        "name: x\nversion: '1'\nsteps:\n  - {name: w, kind: monitor, policy: {windw: 1h}}\n"
    )
    assert typo[0].startswith("steps[0].policy.windw")

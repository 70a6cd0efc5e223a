"""Quorum, veto and segregation-of-duties rules of a sign-off, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from contracts.incident import SignoffDecision
from playbooks.steps import SignoffRole, SignoffStep
from workflows.signoff import apply_decision, open_signoff, refusal

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def _step() -> SignoffStep:
    return SignoffStep(
        name="approve",
        kind="signoff",
        subject="ok?",
        roles=[SignoffRole(role="legal", quorum=2), SignoffRole(role="compliance")],
    )


def _decision(
    who: str,
    role: str,
    decision: Literal["approve", "reject"] = "approve",
    roles: list[str] | None = None,
) -> SignoffDecision:
    return SignoffDecision(
        principal=who, principal_roles=roles or [role], role=role, decision=decision
    )


def test_quorum_of_two_needs_two_distinct_approvers() -> None:
    status = open_signoff(_step(), NOW)
    assert status.deadline == NOW + timedelta(hours=72)
    apply_decision(status, _decision("l1", "legal"), NOW)
    assert status.roles[0].outcome == "pending"
    assert refusal(status, _decision("l1", "legal"), "ic", False) == (
        "l1 has already decided on this sign-off (as legal)"
    )
    apply_decision(status, _decision("l2", "legal"), NOW)
    assert status.roles[0].outcome == "approved" and status.outcome == "pending"
    apply_decision(status, _decision("c1", "compliance"), NOW)
    assert status.outcome == "approved"


def test_one_rejection_rejects_the_signoff() -> None:
    status = open_signoff(_step(), NOW)
    apply_decision(status, _decision("l1", "legal", "reject"), NOW)
    assert status.roles[0].outcome == "rejected" and status.outcome == "rejected"
    assert refusal(status, _decision("c1", "compliance"), "ic", False) == (
        "no sign-off is open on this incident"
    )


def test_refusals_name_the_reason() -> None:
    status = open_signoff(_step(), NOW)
    assert "not required" in (refusal(status, _decision("x", "executive"), "ic", False) or "")
    forged = _decision("mallory", "legal", roles=["communications"])
    assert refusal(status, forged, "ic", False) == "mallory does not hold the role 'legal'"
    own = _decision("ic", "legal", roles=["legal", "incident_commander"])
    assert refusal(status, own, "ic", False) == (
        "the incident commander cannot sign off their own incident"
    )
    assert refusal(status, own, "ic", True) is None
    assert (
        refusal(None, _decision("l1", "legal"), "ic", False)
        == "no sign-off is open on this incident"
    )


def test_a_decided_role_takes_no_more_votes() -> None:
    step = _step()
    step.roles[0].quorum = 1
    status = open_signoff(step, NOW)
    apply_decision(status, _decision("l1", "legal"), NOW)
    assert refusal(status, _decision("l2", "legal"), "ic", False) == (
        "role 'legal' is already decided: approved"
    )

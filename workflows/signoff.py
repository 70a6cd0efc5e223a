"""Sign-off rules as pure functions, so the workflow's validator and tests share them.

A role is approved when ``quorum`` distinct holders approve it; one rejection by a
holder of a required role rejects that role (a veto: a legal objection is not
out-voted). The sign-off is approved when every role is, rejected as soon as one is.
Each principal decides once per sign-off, and the incident commander may not sign
off their own incident unless the playbook allows it. A sign-off bound to an impact
assessment only takes decisions that name that assessment's digest, so approval of an
older version never counts for a newer one.
"""

from __future__ import annotations

from datetime import datetime

from contracts.incident import RoleStatus, SignoffDecision, SignoffStatus, Vote
from playbooks.steps import SignoffStep


def open_signoff(
    step: SignoffStep, now: datetime, assessment_digest: str | None = None
) -> SignoffStatus:
    """A fresh sign-off; bound to ``assessment_digest`` when the step asks for it."""
    return SignoffStatus(
        step=step.name,
        subject=step.subject,
        roles=[RoleStatus(role=r.role, quorum=r.quorum) for r in step.roles],
        deadline=now + step.deadline,
        assessment_digest=assessment_digest if step.bind_to_assessment else None,
    )


def refusal(
    status: SignoffStatus | None,
    decision: SignoffDecision,
    commander: str,
    commander_may_approve: bool,
) -> str | None:
    """Why this decision cannot be accepted, or None when it can."""
    if status is None or status.outcome != "pending":
        return "no sign-off is open on this incident"
    role = _role(status, decision.role)
    if role is None:
        required = ", ".join(r.role for r in status.roles)
        return f"role {decision.role!r} is not required by this sign-off (required: {required})"
    if decision.role not in decision.principal_roles:
        return f"{decision.principal} does not hold the role {decision.role!r}"
    if role.outcome != "pending":
        return f"role {decision.role!r} is already decided: {role.outcome}"
    bound = status.assessment_digest
    if bound is not None and decision.assessment_digest != bound:
        read = decision.assessment_digest or "none"
        return (
            f"this sign-off is bound to impact assessment {bound}; the decision names {read}: "
            "read the current assessment and decide on it"
        )
    if decision.principal == commander and not commander_may_approve:
        return "the incident commander cannot sign off their own incident"
    for other in status.roles:
        if any(vote.principal == decision.principal for vote in other.votes):
            return f"{decision.principal} has already decided on this sign-off (as {other.role})"
    return None


def apply_decision(status: SignoffStatus, decision: SignoffDecision, now: datetime) -> RoleStatus:
    """Record an accepted decision and recompute the role and overall outcomes."""
    role = _role(status, decision.role)
    assert role is not None, "apply_decision after a refusal check"
    role.votes.append(
        Vote(
            principal=decision.principal,
            decision=decision.decision,
            comment=decision.comment,
            at=now,
        )
    )
    if decision.decision == "reject":
        role.outcome = "rejected"
    elif sum(vote.decision == "approve" for vote in role.votes) >= role.quorum:
        role.outcome = "approved"
    if any(r.outcome == "rejected" for r in status.roles):
        status.outcome = "rejected"
    elif all(r.outcome == "approved" for r in status.roles):
        status.outcome = "approved"
    return role


def _role(status: SignoffStatus, name: str) -> RoleStatus | None:
    return next((r for r in status.roles if r.role == name), None)

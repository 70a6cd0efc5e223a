"""Who answers an application, who scores it in shadow, and logging all of it.

The canary split is a hash of the applicant id, not a coin toss: the same applicant
always lands on the same side, and raising the percentage only moves applicants
from the serving side to the candidate, never back, so a ramp does not flip anyone's
experience. The split applies whatever the route serves, primary or fallback: during
an incident the remediated candidate is ramped against the rules-based fallback, with
the contained model still scoring in shadow.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import pandas as pd
import structlog
from sqlmodel import Session

from contracts.routing import RouteSpec, Serving
from demo.dataset import credit_band, income_band
from router.decision_log import DecisionRow, log_decision
from router.deployments import get_deployment, get_pins
from router.fallback import RULES_VERSION, rules_decision
from router.metrics import RouterMetrics
from router.route_table import get_route
from router.schemas import Applicant, Decision
from router.serving import ModelRegistry, ModelUnavailableError

log = structlog.get_logger(__name__)

# What a model may see of an application: everything but who the applicant is.
_NOT_FEATURES = frozenset({"applicant_id", "group"})


def canary_bucket(model: str, applicant_id: str) -> float:
    """A stable position in [0, 100) for an applicant; below canary_percent means candidate."""
    digest = hashlib.sha256(f"{model}\x00{applicant_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


def live_side(route: RouteSpec, model: str, applicant_id: str) -> tuple[Serving, str]:
    """The side that answers this applicant, and the version it answers with.

    Serving primary or fallback, applicants whose :func:`canary_bucket` is below
    ``canary_percent`` get the candidate and everyone else the serving side.
    """
    candidate = route.candidate_version
    if route.serving is Serving.CANDIDATE:
        if candidate is None:
            raise ModelUnavailableError(model, "candidate", "the route names no candidate_version")
        return Serving.CANDIDATE, candidate
    if candidate is not None and canary_bucket(model, applicant_id) < route.canary_percent:
        return Serving.CANDIDATE, candidate
    if route.serving is Serving.FALLBACK:
        return Serving.FALLBACK, RULES_VERSION
    return Serving.PRIMARY, route.primary_version


def decide(
    session: Session,
    registry: ModelRegistry,
    model: str,
    applicant: Applicant,
    now: datetime,
    metrics: RouterMetrics | None = None,
) -> Decision:
    """Answer one application by the model's current route and log it with its shadow scores.

    A shadow version that fails to score is logged as a warning and skipped: shadow
    work must never cost the applicant their answer. ``metrics`` counts the decision
    once it is committed.
    """
    route = get_route(session, model)
    deployment = get_deployment(session, model)
    deployed = deployment.versions if deployment is not None else {}
    features = pd.DataFrame([applicant.model_dump(exclude=set(_NOT_FEATURES))])
    side, version = live_side(route, model, applicant.applicant_id)

    def score(version: str) -> tuple[bool, float]:
        if version not in deployed:
            raise ModelUnavailableError(model, version, "it is not in the model's deployment")
        artifact = deployed[version]

        def pin() -> str | None:
            pinned = get_pins(session, model).get(version)
            return pinned[1] if pinned is not None and pinned[0] == artifact else None

        return registry.get(model, version, artifact, pin).decide(features)[0]

    def row(version: str, outcome: tuple[bool, float], *, shadow: bool) -> DecisionRow:
        return DecisionRow(
            at=now,
            model=model,
            version=version,
            served_by=side.value,
            shadow=shadow,
            applicant_id=applicant.applicant_id,
            group=applicant.group,
            income_band=income_band(applicant.income),
            credit_band=credit_band(applicant.credit_history_years),
            approved=outcome[0],
            credit_limit=outcome[1],
        )

    if side is Serving.FALLBACK:
        outcome = rules_decision(
            applicant.income, applicant.credit_history_years, applicant.debt_ratio
        )
    else:
        outcome = score(version)

    shadows: list[DecisionRow] = []
    for shadow_version in route.shadow_versions:
        if shadow_version == version:
            continue  # it already answered live; a second row would say the same thing
        try:
            shadows.append(row(shadow_version, score(shadow_version), shadow=True))
        except Exception:
            log.warning("shadow scoring failed", model=model, version=shadow_version, exc_info=True)

    live = row(version, outcome, shadow=False)
    tally = RouterMetrics.tally(live, shadows)  # read now: the commit expires the rows
    decision_id = log_decision(session, live, shadows)
    if metrics is not None:
        metrics.count_decision(tally)
    log.debug(
        "decision",
        model=model,
        decision_id=decision_id,
        served_by=side.value,
        version=version,
        shadows=len(shadows),
    )
    return Decision(
        decision_id=decision_id,
        model=model,
        served_by=side,
        version=version,
        approved=outcome[0],
        credit_limit=outcome[1],
    )

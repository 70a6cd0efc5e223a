"""Who answers a request, who scores it in shadow, and logging all of it.

The canary split is a hash of the request id, not a coin toss: the same subject
always lands on the same side, and raising the percentage only moves subjects from
the serving side to the candidate, never back, so a ramp does not flip anyone's
experience. The split applies whatever the route serves, primary or fallback: during
an incident the remediated candidate is ramped against the rules-based fallback, with
the contained model still scoring in shadow.

One request and a batch take the same path: the requests become one DataFrame, each
side scores the rows it answers in one call, every shadow version scores all of them
in one call, and the whole batch is logged in one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import structlog
from sqlmodel import Session

from analysis.scoring import Scores
from contracts.routing import RouteSpec, Serving
from decisions.prometheus import DecisionCounters
from decisions.records import DecisionRecord
from router.contract import ModelContract
from router.decision_log import log_decisions, new_decision_id, shadow_id
from router.deployments import get_pins
from router.schemas import Decision, DecisionRequest
from router.serving import LoadedVersions, ModelUnavailableError

log = structlog.get_logger(__name__)

FALLBACK = "fallback"
"""The key the rules answer under before their own version is known (never a version name)."""


def canary_bucket(model: str, request_id: str) -> float:
    """A stable position in [0, 100) for a request id; below canary_percent means candidate."""
    digest = hashlib.sha256(f"{model}\x00{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


def live_side(route: RouteSpec, model: str, request_id: str) -> tuple[Serving, str | None]:
    """The side that answers this request, and the model version it answers with.

    Serving primary or fallback, requests whose :func:`canary_bucket` is below
    ``canary_percent`` get the candidate and everyone else the serving side. The
    fallback answers with no model version (``None``): the rules' own version is
    stamped on its decisions.
    """
    candidate = route.candidate_version
    if route.serving is Serving.CANDIDATE:
        if candidate is None:
            raise ModelUnavailableError(model, "candidate", "the route names no candidate_version")
        return Serving.CANDIDATE, candidate
    if candidate is not None and canary_bucket(model, request_id) < route.canary_percent:
        return Serving.CANDIDATE, candidate
    if route.serving is Serving.FALLBACK:
        return Serving.FALLBACK, None
    return Serving.PRIMARY, route.primary_version


class Dispatcher:
    """Scores and logs the requests of one model by its route, deployment and contract."""

    def __init__(
        self,
        session: Session,
        versions: LoadedVersions,
        model: str,
        deployed: dict[str, str],
        contract: ModelContract,
    ) -> None:
        self.session = session
        self.versions = versions
        self.model = model
        self.deployed = deployed
        self.contract = contract

    def _score(self, version: str, rows: pd.DataFrame) -> Scores:
        if version not in self.deployed:
            raise ModelUnavailableError(self.model, version, "it is not in the model's deployment")
        artifact = self.deployed[version]

        def pin() -> str | None:
            pinned = get_pins(self.session, self.model).get(version)
            return pinned[1] if pinned is not None and pinned[0] == artifact else None

        return self.versions.get(self.model, version, artifact, pin).score(rows)

    def _rules(self, rows: pd.DataFrame) -> tuple[Scores, str]:
        rules = self.contract.fallback
        if rules is None:
            raise ModelUnavailableError(
                self.model, FALLBACK, "the deployment declares no fallback rules"
            )
        return rules.score(rows), rules.version

    def decide(
        self,
        route: RouteSpec,
        requests: Sequence[DecisionRequest],
        now: datetime,
        counters: DecisionCounters | None = None,
    ) -> list[Decision]:
        """Answer ``requests`` (already checked against the contract) and log them.

        A shadow version that fails to score is logged as a warning and skipped: shadow
        work must never cost a request its answer. ``counters`` count the decisions once
        they are committed.
        """
        rows = self.contract.frame(requests)
        sides = [live_side(route, self.model, r.id) for r in requests]
        count = len(requests)
        decisions = np.zeros(count, dtype=bool)
        amounts = np.zeros(count, dtype=float)
        versions: list[str] = [""] * count
        rules_version: str | None = None
        for key in dict.fromkeys(sides):
            index = np.array([i for i, side in enumerate(sides) if side == key])
            part = rows.iloc[index].reset_index(drop=True)
            if key[1] is None:
                scores, rules_version = self._rules(part)
                version = rules_version
            else:
                scores, version = self._score(key[1], part), key[1]
            self._fill(scores, index, decisions, amounts)
            for i in index:
                versions[i] = version
        keys = [self.contract.keys(r) for r in requests]
        ids = [new_decision_id() for _ in requests]

        def record(
            i: int, version: str, decision: bool, amount: float, *, shadow: bool
        ) -> DecisionRecord:
            served_by = sides[i][0]
            return DecisionRecord(
                decision_id=shadow_id(ids[i], version) if shadow else ids[i],
                model=self.model,
                version=version,
                served_by=served_by,
                shadow=shadow,
                at=now,
                group=keys[i][0],
                stratum=keys[i][1],
                decision=decision if self.contract.decides else None,
                amount=amount if self.contract.grants else None,
                rules_version=rules_version
                if served_by is Serving.FALLBACK and not shadow
                else None,
            )

        logged = [
            record(i, versions[i], bool(decisions[i]), float(amounts[i]), shadow=False)
            for i in range(count)
        ]
        for shadow_version in route.shadow_versions:
            try:
                scores = self._score(shadow_version, rows)
            except Exception:
                log.warning(
                    "shadow scoring failed", model=self.model, version=shadow_version, exc_info=True
                )
                continue
            shadow_decisions = np.zeros(count, dtype=bool)
            shadow_amounts = np.zeros(count, dtype=float)
            self._fill(scores, np.arange(count), shadow_decisions, shadow_amounts)
            logged += [
                record(
                    i,
                    shadow_version,
                    bool(shadow_decisions[i]),
                    float(shadow_amounts[i]),
                    shadow=True,
                )
                for i in range(count)
                if versions[i] != shadow_version  # it answered live: a second row says the same
            ]
        log_decisions(self.session, logged)
        if counters is not None:
            for row in logged:
                counters.count_decision(row)
        log.debug("decisions", model=self.model, count=count)
        return [
            Decision(
                decision_id=ids[i],
                id=requests[i].id,
                model=self.model,
                served_by=sides[i][0],
                version=versions[i],
                decision=bool(decisions[i]) if self.contract.decides else None,
                amount=float(amounts[i]) if self.contract.grants else None,
            )
            for i in range(count)
        ]

    @staticmethod
    def _fill(
        scores: Scores,
        index: np.ndarray,
        decisions: np.ndarray,
        amounts: np.ndarray,
    ) -> None:
        """Write ``scores`` into the batch's arrays at ``index``.

        A model without a decision grants to everyone (True); one without an amount
        grants 0, so every logged row has both and sums stay comparable.
        """
        decisions[index] = True if scores.decision is None else scores.decision
        if scores.amount is not None:
            amounts[index] = scores.amount
